"""Generation runs: plan, resume, stop and follow one — the calls both faces make.

`coach run` and the app's monitor only turn input into a `RunSettings`, call
these, and draw the events and summary that come back. What used to be done
twice, once per face, is done here once:

- planning stores the settings whole with the run (`plan_new_run`); a resume
  reads them back whole (`settings_for_resume`), so review mode, minimum
  exchanges and the token cap survive a resume from the other face;
- a `RunSession` takes the run's lease before any work, so a second resumer
  (either face) is refused with one message naming the owner, runs the
  supervisor with the lease's heartbeat in its task group, and gives the
  lease and the models back however it ends;
- `RunFollower` lets a face watch a run another process owns, from the
  store alone: the run's new event rows, read back as the typed events a
  live run publishes, so one fold draws both;
- `actor_counters` rebuilds each actor's counters from those rows, so a
  resumed run's counters go on from where they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from actors import heap
from actors.safety import load_safety_net
from state import claims, db_errors
from state import pipeline as db
from state.errors import CoachError
from state.leases import DEFAULT_TTL_S, Holder, LeaseHeld, Owner, live_holder, run_scope
from state.models import Run, Transcript
from state.run_activity import StoredEvent, events_after, judging_counts, recent_events, run_activity
from state.run_index import RunMarker, run_marker
from state.store import Store

from ..events import EventBus, PipelineEvent, event_from
from ..generation.run_plan import persona_records, plan_run
from ..pack.domain_pack import DomainPack
from ..run_lease import RunLease
from ..supervisor import ACTORS, ActorStats, RunSummary, Supervisor
from .run_settings import SETTINGS_KEY, RunSettings, from_stored

RouterFactory = Callable[[RunSettings], object]
"""Builds the model router a run uses from its settings (tests pass scripted ones)."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# --- finding and planning ------------------------------------------------------------------------


def find_run(store: Store, ref: str) -> Run:
    """A generation run by id, or the newest for 'latest'; a CoachError when there is none."""
    run = db.latest_run(store) if ref == "latest" else db.get_run(store, ref)
    if run is None or run.kind != "generate":
        raise CoachError(
            f"no generation run {ref!r} in this workspace"
            if ref != "latest"
            else "no generation run in this workspace yet: start one with `coach run`"
        )
    return run


def settings_of(run: Run) -> RunSettings:
    """The settings a run was started with, whichever face (and version) started it."""
    return from_stored(run.config, seed=run.seed, domain=run.domain or None, run_id=run.id)


def stored_settings(store: Store, run_id: str) -> RunSettings:
    return settings_of(find_run(store, run_id))


def plan_new_run(store: Store, pack: DomainPack, settings: RunSettings, *, source: str) -> tuple[str, RunSettings]:
    """Plan a run and record it with its settings; returns its id and the settings as stored.

    A missing seed is drawn here and stored, so the run can be planned again the same way.
    """
    seed = settings.seed if settings.seed is not None else secrets.randbelow(10_000)
    settings = settings.model_copy(update={"seed": seed, "domain": pack.name})
    run_id = f"run-{seed}-{secrets.token_hex(3)}"
    try:
        plan = plan_run(
            pack, run_id, transcripts=settings.transcripts, seed=seed, lengths=settings.lengths, mix=settings.mix
        )
    except ValueError as err:
        raise CoachError(f"lengths/mix: {err}") from None
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=seed,
        config={SETTINGS_KEY: settings.stored(), "transcripts": settings.transcripts, "source": source},
        personas=persona_records(pack, plan),
        transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
    )
    return run_id, settings


def settings_for_resume(
    store: Store, pack: DomainPack, ref: str, *, in_flight: int | None = None, run_config: Path | str | None = None
) -> tuple[str, RunSettings]:
    """The run to resume and its stored settings; only the pace and the backends' file may be changed.

    A run made with another domain pack is refused: its personas, prompts and rubric are that pack's.
    """
    run = find_run(store, ref)
    settings = settings_of(run)
    if settings.domain and settings.domain != pack.name:
        raise CoachError(
            f"run {run.id} was made with the domain pack {settings.domain!r}, not {pack.name!r}: "
            f"open it with --domain pointing at that pack"
        )
    changes: dict = {}
    if in_flight is not None:
        changes["in_flight"] = in_flight
    if run_config is not None:
        changes["run_config"] = str(Path(run_config).expanduser().resolve())
    return run.id, settings.model_copy(update=changes)


def check_unchanged(stored: RunSettings, given: dict) -> None:
    """Refuse options that would change what a resumed run is (they are the run's, stored with it)."""
    for name, value in given.items():
        if getattr(stored, name) != value:
            option = "--" + name.replace("_", "-")
            raise CoachError(
                f"{option}: a resumed run keeps the settings it was started with "
                f"({name} = {getattr(stored, name)!r}); start a new run to change them"
            )


# --- who works on a run ---------------------------------------------------------------------------


def owner_of(store: Store, run_id: str) -> Holder | None:
    """The live owner of a run (any process, this one included), or None."""
    return live_holder(store, run_scope(run_id))


def check_no_workers(store: Store, run_id: str) -> None:
    """Refuse to own a run while `coach worker`s are live on it (they would work the same transcripts)."""
    live = [w for w in claims.workers(store, run_id, joined=True) if w["live"]]
    if live:
        where = ", ".join(f"{w['host']} pid {w['pid']}" for w in live[:3]) + (" …" if len(live) > 3 else "")
        raise CoachError(
            f"run {run_id} is being worked on by {len(live)} worker(s) ({where}): join them with "
            f"`coach worker --run {run_id}`, or wait until they finish"
        )


def newest_run_id(store: Store) -> str | None:
    """The newest generation run's id (a face showing "the latest run" moves on when another starts)."""
    run = db.latest_run(store)
    return run.id if run is not None else None


# --- what a run has done -------------------------------------------------------------------------


def actor_counters(store: Store, run_id: str) -> dict[str, ActorStats]:
    """Each actor's calls, tokens and failed steps so far, rebuilt from the run's event rows.

    The same counts the supervisor keeps live (`ActorStats`), read from the store: what a monitor
    shows for a run that is not live here, and where a resumed run's counters start.
    """
    found = run_activity(store, run_id)
    stats = {name: ActorStats() for name in ACTORS}
    stats["persona"].calls = found.personas
    for name, steps in (
        ("simulator", found.user_messages),
        ("assistant", found.replies),
        ("assessor", found.assessments),
    ):
        stats[name].calls = steps.steps
        stats[name].prompt_tokens = steps.prompt_tokens
        stats[name].completion_tokens = steps.completion_tokens
    stats["curator"].calls = found.curation_passes
    for name, count in found.failures.items():
        if name in stats:
            stats[name].errors = count
    return stats


def carry_counters(live: dict[str, ActorStats], before: dict[str, ActorStats]) -> None:
    """Add what a run did before this pass to a supervisor's fresh counters (calls, tokens, errors)."""
    for name, old in before.items():
        st = live.get(name)
        if st is None:
            continue
        st.calls += old.calls
        st.errors += old.errors
        st.prompt_tokens += old.prompt_tokens
        st.completion_tokens += old.completion_tokens


def default_router(settings: RunSettings):
    from ..backends.router import ModelRouter
    from ..run_config import load_run_config

    return ModelRouter.from_config(load_run_config(Path(settings.run_config) if settings.run_config else None))


def model_backends(router) -> list:
    """The in-process (llama.cpp) backends a router's roles use, each once."""
    from ..run_config import ROLES

    seen: dict[int, object] = {}
    for role in ROLES:
        try:
            backends = router.backends_for(role)
        except Exception:  # noqa: BLE001 - a role the config does not map is not ours to load
            continue
        for backend in backends:
            if getattr(backend, "kind", "") == "llama_cpp":
                seen.setdefault(id(backend), backend)
    return list(seen.values())


async def load_models(router) -> None:
    """Load a run's in-process models in a worker thread before the supervisor starts.

    The supervisor counts tokens inline (to fit a conversation into the window), and a llama.cpp
    backend loads its model on first use: loading here keeps that first count from stalling the
    run's loop for seconds.
    """
    for backend in model_backends(router):
        load = getattr(backend, "pool", None)
        if load is not None:
            await anyio.to_thread.run_sync(load)


class RunSession:
    """This process working on one run: lease, router, supervisor, and their clean ends.

    `run` may be awaited once. `stop` may be called from the run's own event loop at any time —
    before the supervisor exists, while it works, or after — and the run then ends `stopped`
    after the model calls in flight are interrupted or finish.
    """

    def __init__(
        self,
        store: Store,
        pack: DomainPack,
        run_id: str,
        settings: RunSettings,
        *,
        make_router: RouterFactory = default_router,
        bus: EventBus | None = None,
        owner: Owner | None = None,
        lease_ttl_s: float = DEFAULT_TTL_S,
        heartbeat_s: float | None = None,
        preload_models: bool = False,
        stream_replies: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.pack = pack
        self.run_id = run_id
        self.settings = settings
        self.make_router = make_router
        self.bus = bus or EventBus()
        self.lease = RunLease(store, run_id, owner=owner, ttl_s=lease_ttl_s, interval_s=heartbeat_s)
        self.preload_models = preload_models
        self.stream_replies = stream_replies
        """Which transcripts' replies to stream (a face follows them); see `Supervisor.stream_replies`."""
        self.supervisor: Supervisor | None = None
        self.router = None
        self._stop_requested = False

    def check_owner(self) -> None:
        """Refuse early, with the owner's name, when another process holds the run."""
        holder = owner_of(self.store, self.run_id)
        if holder is not None and holder.owner != self.lease.owner.id:
            raise LeaseHeld(holder, f"run {self.run_id}")
        check_no_workers(self.store, self.run_id)  # a run shared by workers is theirs while they are live

    async def run(self, *, only: Callable[[Transcript], bool] | None = None) -> RunSummary:
        try:
            self.lease.take()
        except SQLAlchemyError as err:
            raise CoachError(f"run {self.run_id}: {db_errors.describe(err)}") from None
        try:
            check_no_workers(self.store, self.run_id)  # from either face: workers on it keep it theirs
            self.router = self.make_router(self.settings)
            try:
                await self._start_supervisor()
                return await self.supervisor.run(self.run_id, only=only, lease=self.lease)
            except SQLAlchemyError as err:  # the store failed outside any step (at the start or the end)
                self._record_failure(db_errors.describe(err))
                raise CoachError(f"run {self.run_id}: {db_errors.describe(err)}") from None
            except Exception as err:
                # Outside any step (a broken run config, a bug): the run says it failed, and why.
                self._record_failure(str(err) if isinstance(err, CoachError) else f"{type(err).__name__}: {err}")
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await self.router.aclose()
        finally:
            with contextlib.suppress(SQLAlchemyError):  # a full disk cannot take it; the lease expires on its own
                self.lease.release()

    async def _start_supervisor(self) -> None:
        """`self.supervisor`, ready to run on `self.router`: one start-up for an owned run and a worker's share.

        The crisis net is read at every assessment: it is loaded now, so a broken safety section
        stops the run with one message before any work, not each transcript. The actor counters
        carry on from the stored ones; a stop asked for before now applies at once.
        """
        await anyio.to_thread.run_sync(load_safety_net, self.pack)
        if self.preload_models:
            await load_models(self.router)
        heap.tune()
        heap.settle()  # the net, the pack and the models live as long as the run: out of the collector's sight
        self.supervisor = Supervisor(
            self.store,
            self.router,
            self.pack,
            bus=self.bus,
            settings=self.settings.generation(),
            curation=self.settings.curation(),
        )
        self.supervisor.stream_replies = self.stream_replies
        carry_counters(self.supervisor.stats, actor_counters(self.store, self.run_id))
        if self._stop_requested:
            self.supervisor.stop()

    def _record_failure(self, cause: str) -> None:
        with contextlib.suppress(Exception):  # the store may be what failed; the caller reports the cause
            db.set_run_status(self.store, self.run_id, "failed", error=cause)

    def stop(self) -> None:
        """Stop the run: steps in flight end, model calls are interrupted, the status becomes `stopped`."""
        self._stop_requested = True
        if self.supervisor is not None:
            self.supervisor.resume()  # a paused worker must wake to see the cancellation
            self.supervisor.stop()
        for backend in model_backends(self.router) if self.router is not None else ():
            interrupt = getattr(backend, "interrupt", None)
            if interrupt is not None:
                interrupt()

    def pause(self) -> None:
        if self.supervisor is not None:
            self.supervisor.pause()

    def resume(self) -> None:
        if self.supervisor is not None:
            self.supervisor.resume()

    @property
    def paused(self) -> bool:
        return self.supervisor is not None and self.supervisor.paused


async def run_until_signalled(
    session: RunSession,
    *,
    only: Callable[[Transcript], bool] | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> tuple[RunSummary, int | None]:
    """Run a session from a main thread; SIGINT and SIGTERM stop it cleanly (status `stopped`).

    Returns the summary and the signal that stopped it, if one did.
    """
    received: list[int] = []

    async def watch() -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                if not received and on_signal is not None:
                    on_signal(signum)
                received.append(signum)
                session.stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            summary = await session.run(only=only)
        finally:
            tg.cancel_scope.cancel()
    return summary, (received[0] if received else None)


def exit_status(summary: RunSummary, signum: int | None = None) -> int:
    """0 only when every transcript finished; 128 + the signal when one stopped it; else 1."""
    if signum is not None:
        return 128 + signum
    return 0 if summary.ok else 1


# --- following a run another process owns -----------------------------------------------------


class RunFollower:
    """Watches a run from the store alone: one cheap marker per look, its new events only when it moved.

    `start` takes the baseline (call it before loading the run's state, so an event committed
    meanwhile is read twice rather than never); `new_events` then gives every event row written
    since, as the typed events a live run publishes.
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._marker: RunMarker | None = None
        self.last_event = 0

    def start(self) -> None:
        self._marker = run_marker(self.store, self.run_id)
        self.last_event = self._marker[2] or 0

    def moved(self) -> bool:
        marker = run_marker(self.store, self.run_id)
        moved, self._marker = marker != self._marker, marker
        return moved

    @property
    def stored_status(self) -> str | None:
        """The run's status as the store had it at the last look."""
        return self._marker[0] if self._marker is not None else None

    def new_events(self, limit: int = 5000) -> list[PipelineEvent]:
        """The run's events written since the last call (at most `limit`; the rest come next time)."""
        rows = events_after(self.store, self.run_id, self.last_event, limit)
        if rows:
            self.last_event = rows[-1].id
        return [ev for row in rows if (ev := typed_event(self.run_id, row)) is not None]

    def judging(self) -> dict[str, int]:
        """Verdicts stored so far per transcript being judged (a stored run says how many, not of how many)."""
        return judging_counts(self.store, self.run_id)

    def owner(self) -> Holder | None:
        return owner_of(self.store, self.run_id)


def last_events(store: Store, run_id: str, limit: int = 50) -> list[PipelineEvent]:
    """A run's newest events (oldest of them first): the event log of a run opened from the store."""
    return [ev for row in recent_events(store, run_id, limit) if (ev := typed_event(run_id, row)) is not None]


def typed_event(run_id: str, row: StoredEvent) -> PipelineEvent | None:
    """A stored event row as its typed event, stamped with when it was written; None for kinds not drawn."""
    event = event_from(row.kind, run_id, row.transcript_id, row.payload, strict=False)
    if event is None:
        return None
    written = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)  # stored in UTC
    return dataclasses.replace(event, at=written.timestamp())
