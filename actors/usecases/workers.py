"""Workers: any number of processes, on any machines, working one run together.

`coach worker` only parses options and prints; what it does is here:

- `plan_shared_run` plans a run to be worked by workers (the same plan as
  `coach run`'s, with its settings stored whole), and `settings_to_join` reads a
  run's stored settings back for a worker joining it (its pace and backends'
  file may be its own: the run config's path is this machine's);
- a `WorkerSession` is a `RunSession` without the run's lease: it joins the
  run, claims transcripts (`actors.shared_run`), and leaves however it ends,
  handing back what it still holds at once;
- `run_workers` groups who is on a run by host, for the monitor and the
  summary ("worked by 4 workers on 3 hosts").

A run is worked either by one owner (`coach run`, the app) or by workers,
never both at once: a worker is refused while an owner holds the run, and
an owner while workers are live on it (`runs.check_no_workers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from state import claims, db_errors
from state.errors import CoachError
from state.leases import DEFAULT_TTL_S, LeaseHeld
from state.models import Transcript
from state.store import Store

from ..pack.domain_pack import DomainPack
from ..shared_run import ClaimFeeder
from ..supervisor import RunSummary
from .run_settings import RunSettings
from .runs import (
    RunSession,
    owner_of,
    plan_new_run,
    settings_for_resume,
)


@dataclass
class WorkerInfo:
    """One worker on a run, as the monitor draws it."""

    host: str
    pid: int
    live: bool
    transcripts: list[str]


@dataclass
class HostWorkers:
    host: str
    workers: list[WorkerInfo]

    @property
    def live(self) -> int:
        return sum(1 for w in self.workers if w.live)


@dataclass
class WorkerSummary:
    """How a worker's pass ended: the run's summary, what this worker did, and who else worked the run."""

    run: RunSummary
    claimed: int = 0
    finished_here: int = 0
    hosts: list[HostWorkers] = field(default_factory=list)

    @property
    def workers(self) -> int:
        return sum(len(h.workers) for h in self.hosts)


def run_workers(store: Store, run_id: str) -> list[HostWorkers]:
    """Everyone who worked the run (live or gone), per host, live ones first."""
    by_host: dict[str, list[WorkerInfo]] = {}
    for w in claims.workers(store, run_id, joined=True):
        by_host.setdefault(w["host"], []).append(
            WorkerInfo(host=w["host"], pid=w["pid"], live=w["live"], transcripts=list(w["transcripts"]))
        )
    hosts = [HostWorkers(host, sorted(ws, key=lambda w: (not w.live, w.pid))) for host, ws in by_host.items()]
    return sorted(hosts, key=lambda h: (-h.live, h.host))


def plan_shared_run(store: Store, pack: DomainPack, settings: RunSettings) -> tuple[str, RunSettings]:
    """Plan a run for workers to share; returns its id (what the other machines pass to `--run`)."""
    return plan_new_run(store, pack, settings, source="worker")


def settings_to_join(
    store: Store, pack: DomainPack, ref: str, *, in_flight: int | None = None, run_config: str | None = None
) -> tuple[str, RunSettings]:
    """The run to join and its stored settings; this worker's pace and run config may be its own."""
    return settings_for_resume(store, pack, ref, in_flight=in_flight, run_config=run_config)


HELD_PER_IN_FLIGHT = 2
"""A worker holds twice its in-flight number of transcripts: while some are curated and judged, as many
again are generated, as a single owner's actors (each `in_flight` wide) would. Holding more would leave
a worker that joins later less to do."""


class WorkerSession(RunSession):
    """This process as one worker of a shared run: claims instead of the run's lease.

    `run` may be awaited once; `stop` ends it (the claims go back at once, the run goes on with the
    other workers). `claim_ttl_s` is how long the claims of a worker that died on another machine stay
    before others take them over (on this machine, a dead worker's claims are taken at once).
    """

    def __init__(
        self,
        store: Store,
        pack: DomainPack,
        run_id: str,
        settings: RunSettings,
        *,
        claim_ttl_s: float = DEFAULT_TTL_S,
        poll_s: float = 1.0,
        slots: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(store, pack, run_id, settings, **kwargs)
        self.feeder = ClaimFeeder(
            store,
            run_id,
            slots=slots or HELD_PER_IN_FLIGHT * settings.in_flight,
            owner=self.lease.owner,
            ttl_s=claim_ttl_s,
            poll_s=poll_s,
        )

    def check_owner(self) -> None:
        """Refuse early, naming the owner, when one process owns the run alone (`coach run`, the app)."""
        holder = owner_of(self.store, self.run_id)
        if holder is not None:
            raise LeaseHeld(holder, f"run {self.run_id}")

    async def run(self, *, only: Callable[[Transcript], bool] | None = None) -> RunSummary:
        try:
            self.feeder.join()
        except SQLAlchemyError as err:
            raise CoachError(f"run {self.run_id}: {db_errors.describe(err)}") from None
        try:
            # Joined first, looked after: an owner taking the run's lease meanwhile sees this worker
            # (it looks once its lease is taken), or this worker sees it here.
            self.check_owner()
            self.router = self.make_router(self.settings)
            try:
                await self._start_supervisor()
                return await self.supervisor.run(self.run_id, only=only, feeder=self.feeder)
            except SQLAlchemyError as err:
                raise CoachError(f"run {self.run_id}: {db_errors.describe(err)}") from None
            finally:
                with anyio.CancelScope(shield=True):
                    await self.router.aclose()
        finally:
            with contextlib.suppress(SQLAlchemyError):  # an unreachable store: the claims expire on their own
                self.feeder.leave()

    def summary(self, run: RunSummary) -> WorkerSummary:
        """The run's summary with this worker's share and who else worked it."""
        try:
            hosts = run_workers(self.store, self.run_id)
        except SQLAlchemyError:
            hosts = []
        return WorkerSummary(run=run, claimed=self.feeder.claimed, finished_here=self.feeder.finished_here, hosts=hosts)
