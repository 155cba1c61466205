"""Starting, pausing, stopping, resuming and following a pipeline run from inside the app.

The run itself is the use case `coach run` calls (`actors.usecases.runs`),
never a copy: this module turns the form's request into `RunSettings`, runs a
`RunSession` on a thread and event loop of its own (see `RunController` for
why), and turns its event stream into *bursts* for the screen.

Why bursts: the supervisor publishes an event for every step, so a fast
backend produces thousands a second. Every 100 ms the app takes whatever has
arrived, folds it all into `RunState` and hands the screen one `Changes`.
The screen therefore redraws at most ten times a second however fast the
run goes, and the loop stays free for keystrokes.

A run that another process owns (a `coach run` in a shell) is not resumed
here but *followed*: `follow_tick` asks the store whether the run moved and
reloads it when it did.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel

from actors.events import WorkerStatus
from actors.generation.run_plan import DEFAULT_LENGTHS
from actors.pack.loader import DomainPack
from actors.supervisor import RunSummary, Supervisor
from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from state.errors import CoachError
from state.store import Store

from .run_state import Changes, RunState

REFRESH_INTERVAL_S = 0.1
"""At most ten redraws a second (see the module docstring)."""

REVIEW_MODES = ("auto", "review")


@dataclass
class RunRequest:
    """What the new-run form asks for; the same knobs as `coach run`."""

    transcripts: int = 3
    seed: int | None = None
    lengths: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LENGTHS))
    review_mode: str = "auto"
    in_flight: int = 4
    max_tokens: int | None = None
    min_exchanges: int = 10
    mix: dict[str, float] | None = None


def settings_for(request: RunRequest, *, run_config: Path | None = None) -> RunSettings:
    """The run's settings for a request (the same model `coach run` builds from its options)."""
    return RunSettings(
        transcripts=request.transcripts,
        seed=request.seed,
        lengths=request.lengths,
        mix=request.mix,
        review_mode=request.review_mode,
        in_flight=request.in_flight,
        max_tokens=request.max_tokens,
        min_exchanges=request.min_exchanges,
        run_config=str(run_config.expanduser().resolve()) if run_config else None,
    )


def generates_locally(config_path: Path | None = None) -> bool:
    """Whether the simulator or the assistant runs on a local llama.cpp model (slow on a CPU)."""
    try:
        from actors.run_config import load_run_config

        cfg = load_run_config(config_path)
        backends = cfg.all_backends()
        return any(
            backends[name].kind == "llama_cpp" for role in ("user_sim", "assistant") for name in cfg.role(role).backends
        )
    except Exception:  # noqa: BLE001 - a broken config is the form's to report, not this hint's
        return False


def describe_backends(config_path: Path | None = None) -> str:
    """ "role → backend" in a few words for the header: which models this app's runs would use."""
    try:
        from actors.run_config import ROLES, load_run_config

        cfg = load_run_config(config_path)
        backends = cfg.all_backends()
        used = {}
        for role in ROLES:
            for name in cfg.role(role).backends:
                used.setdefault(name, getattr(backends[name], "model", None) or backends[name].kind)
        return ", ".join(f"{name}: {model}" for name, model in used.items())
    except Exception as err:  # noqa: BLE001 - the header must never take the app down; the form will say more
        return f"run config problem: {str(err).splitlines()[0]}"


_FINISHED = object()
"""Put on the event queue by the run's thread when the run is over (after its last event)."""


class RunController:
    """One live run at a time, owned by the app so it outlives screen switches.

    The run works on a thread of its own with its own event loop. Why
    not on the app's loop: with an instant backend the supervisor is pure
    Python — store commits, prompt building, scoring — spread over hundreds
    of worker tasks, and a loop shared with them wakes the screen only after
    every ready task has had its turn (measured: p99 lag ≈ 0.4–0.8 s with 64
    transcripts in flight). On its own thread the screen's loop waits at
    most one interpreter switch interval for the GIL. The run's thread only
    forwards events onto a thread-safe queue; folding them into `RunState`
    and drawing happen on the app's thread, ten times a second at most.
    Pause, continue and stop are handed to the run's loop through its token.

    ``router_factory`` (tests) replaces the backends every run would get from
    its stored run config.
    """

    def __init__(
        self,
        store: Store,
        pack: DomainPack,
        *,
        router_factory: Callable[[], object] | None = None,
        config_path: Path | None = None,
        refresh_interval: float = REFRESH_INTERVAL_S,
    ) -> None:
        self.store = store
        self.pack = pack
        self.make_router = (lambda _settings: router_factory()) if router_factory else runs.default_router
        self.config_path = config_path
        self.refresh_interval = refresh_interval
        self.state = RunState()
        self.settings: RunSettings | None = None
        """The settings of the run live here (None between runs)."""
        self.session: runs.RunSession | None = None
        self.summary: RunSummary | None = None
        self.error: str | None = None
        self.dropped = 0
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token = None
        self._stop_requested = False
        self._follower: runs.RunFollower | None = None

    # --- planning and finding -------------------------------------------------------------

    def create_run(self, request: RunRequest) -> str:
        """Plan and record a new run exactly as `coach run` does; returns its id."""
        run_id, _ = runs.plan_new_run(
            self.store, self.pack, settings_for(request, run_config=self.config_path), source="tui"
        )
        return run_id

    def settings_to_resume(self, run_id: str) -> RunSettings:
        """The run's stored settings (a CoachError says why it cannot be resumed here)."""
        return runs.settings_for_resume(self.store, self.pack, run_id)[1]

    def owner_elsewhere(self, run_id: str) -> str | None:
        """ "host pid … since …" when another process works on the run, else None."""
        holder = runs.owner_of(self.store, run_id)
        if holder is None or (self.session is not None and self.active and holder.owner == self.session.lease.owner.id):
            return None
        return holder.describe()

    def show(self, run_id: str) -> RunState:
        """Load a run from the store for viewing (not while another one is live); follow it if it is owned elsewhere."""
        if not self.active:
            self.state = RunState.load(self.store, run_id, owner=self.owner_elsewhere(run_id))
            self._follower = runs.RunFollower(self.store, run_id) if self.state.status == "elsewhere" else None
            if self._follower is not None:
                self._follower.moved()  # the state just loaded is the baseline
        return self.state

    def follow_tick(self) -> Changes | None:
        """If the run shown is owned by another process and moved, reload it; what changed, or None."""
        follower = self._follower
        if follower is None or self.active or self.state.run_id != follower.run_id:
            return None
        if not follower.moved():
            return None
        before = self.state
        self.show(follower.run_id)
        return _difference(before, self.state)

    @property
    def following(self) -> bool:
        return self._follower is not None and not self.active

    # --- control (from the app's thread) --------------------------------------------------

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def supervisor(self) -> Supervisor | None:
        return self.session.supervisor if self.session is not None and self.active else None

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the run's own loop (supervisor primitives belong to it)."""
        if self._token is None:
            return
        with contextlib.suppress(RuntimeError):  # the run's loop may have just ended
            anyio.from_thread.run_sync(fn, token=self._token)

    @property
    def paused(self) -> bool:
        return self.session is not None and self.session.paused

    def pause(self) -> None:
        if self.session is not None and self.supervisor is not None and not self.session.paused:
            self._call(self.session.pause)
            self.state.status = "paused"

    def resume(self) -> None:
        if self.session is not None and self.session.paused:
            self._call(self.session.resume)
            self.state.status = "running"

    def stop(self) -> None:
        """Ask the live run to stop: its calls in flight are interrupted and it ends `stopped`."""
        if not self.active:
            return
        self._stop_requested = True
        if self.session is not None:
            self._call(self.session.stop)
        self.state.status = "stopping"

    def shutdown(self, timeout: float | None = 60.0) -> bool:
        """Stop the live run, wait for its thread, and free the in-process models: what quitting needs.

        Why: llama.cpp contexts used by a thread still alive when the interpreter exits crash the
        process (a segmentation fault) as the library's globals are torn down under it. Returns
        whether the run's thread ended in time.
        """
        self.stop()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        if ended:
            from actors.backends import model_cache

            model_cache.release_all()
        return ended

    def stats(self) -> dict:
        supervisor = self.supervisor
        return dict(supervisor.stats) if supervisor is not None else {}

    # --- the run --------------------------------------------------------------------------

    def start(self, run_id: str, settings: RunSettings, *, only: set[str] | None = None) -> None:
        """Start (or resume) ``run_id`` on the run's own thread; `drain` collects what it did."""
        if self.active:
            raise RuntimeError("a run is live already")
        self.state = RunState.load(self.store, run_id)
        self.state.status = "starting"
        self.settings = settings
        self.summary, self.error, self.session, self._token = None, None, None, None
        self._stop_requested = False
        self._follower = None
        self._events = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._thread_main, args=(run_id, settings, only), name=f"coach run {run_id}", daemon=True
        )
        self._thread.start()

    def _thread_main(self, run_id: str, settings: RunSettings, only: set[str] | None) -> None:
        try:
            anyio.run(self._run, run_id, settings, only)
        except BaseException as err:  # noqa: BLE001 - reported to the person, never raised into the app
            self.error = self.error or f"run {run_id} could not continue: {err}"
        finally:
            self._events.put(_FINISHED)

    async def _run(self, run_id: str, settings: RunSettings, only: set[str] | None) -> None:
        self._token = anyio.lowlevel.current_token()
        session = runs.RunSession(
            self.store, self.pack, run_id, settings, make_router=self.make_router, preload_models=True
        )
        receive = session.bus.subscribe(buffer=100_000)
        self.session = session
        if self._stop_requested:
            session.stop()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._forward, receive)
                try:
                    selected = (lambda t: t.id in only) if only else None
                    self.summary = await session.run(only=selected)
                finally:
                    session.bus.close()  # the forwarder passes on what is left, then ends
            self.dropped = session.bus.dropped
        except Exception as err:  # noqa: BLE001 - shown to the person, the app keeps going
            cause = _root_cause(err)
            self.error = (
                str(cause)
                if isinstance(cause, CoachError)
                else f"run {run_id} could not continue: {type(cause).__name__}: {cause}"
            )

    async def _forward(self, receive) -> None:
        """Pass events to the app's thread; worker-status chatter is read from `stats` instead."""
        async with receive:
            async for event in receive:
                if not isinstance(event, WorkerStatus):
                    self._events.put(event)

    def drain(self) -> tuple[Changes, bool]:
        """Fold every event that arrived since the last call (app's thread); also says if the run ended."""
        batch, finished = [], False
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
            if item is _FINISHED:
                finished = True
                break
            batch.append(item)
        changes = self.state.apply(batch)
        if changes.rejections:
            self.state.reload_rejections(self.store)
        if finished:
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self.error:
                self.state.status = "failed"
                self.state.errors.append(self.error)
                changes.errors.append(self.error)
            self.settings = None
            changes.run = True
        return changes, finished

    async def drive(
        self, run_id: str, settings: RunSettings, on_changes: Callable[[Changes], None], *, only: set[str] | None = None
    ) -> RunSummary | None:
        """Run ``run_id`` to the end, calling ``on_changes`` with what changed at most every tick.

        ``only`` limits the pass to some transcripts (those a reviewer sent
        back to be judged again). Failures that are not the run's own (a
        broken run config, a run owned elsewhere) come back as ``None``, with
        the reason in `error` and the state; they are never raised into the app.
        """
        self.start(run_id, settings, only=only)
        on_changes(Changes(run=True, new_rows=True))
        while True:
            started = time.monotonic()
            changes, finished = self.drain()
            if changes:
                on_changes(changes)
            if finished:
                return self.summary if self.error is None else None
            await anyio.sleep(max(0.0, self.refresh_interval - (time.monotonic() - started)))


def _root_cause(err: BaseException) -> BaseException:
    """The first real error inside task-group wrappers: what a person should read."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def _difference(before: RunState, after: RunState) -> Changes:
    """What a reload changed, row by row, so the monitor redraws only that."""
    changes = Changes(run=before.status != after.status or before.owner != after.owner)
    if set(before.rows) != set(after.rows):
        changes.new_rows = True
    for tid, row in after.rows.items():
        old = before.rows.get(tid)
        if old is None or old != row:
            changes.rows.add(tid)
        if old is None or old.exchanges != row.exchanges:
            changes.exchanges.add(tid)
        if row.passed is not None and (old is None or (old.score, old.passed) != (row.score, row.passed)):
            changes.assessed.add(tid)
    changes.rejections = before.rejection_reasons != after.rejection_reasons
    return changes
