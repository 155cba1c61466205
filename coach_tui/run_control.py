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

Any run shown here but not live here is *followed* from the store:
`follow_tick` asks once a second whether it moved and, if so, folds the
event rows written since into the same `RunState` a live run uses. So a run
another process owns (a `coach run` in a shell) is drawn as it goes, a run
shown as interrupted comes alive when a shell resumes it, and the newest run
shown by default gives way to a newer one started elsewhere.

The streamed reply: the transcript the monitor shows is `watched`, and the
run streams that transcript's replies (`Supervisor.stream_replies`), so the
pane fills in as the model writes; every other transcript is asked whole.
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
from actors.supervisor import ActorStats, RunSummary, Supervisor
from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from state.errors import CoachError
from state.status import TranscriptStatus
from state.store import Store

from .run_state import Changes, RunState

REFRESH_INTERVAL_S = 0.1
"""At most ten redraws a second (see the module docstring)."""
OWNER_CHECK_S = 5.0
"""How often a followed run that did not move is asked who owns it (its owner may have died)."""
COUNTERS_S = 5.0
"""How often a followed run's actor counters are counted again from its events while it moves."""
LOG_ON_OPEN = 50
"""Events of a run opened from the store shown in its event log."""

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
        self._pinned = True
        self._owner_checked = 0.0
        self._counted = 0.0
        self._counters: dict[str, ActorStats] = {}
        self.watched: str | None = None
        """The transcript a face is showing: its replies are streamed while a run here writes them."""

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

    def show(self, run_id: str, *, pinned: bool = True) -> RunState:
        """Load a run from the store for viewing (not while another one is live), and follow it from there.

        ``pinned`` is False when the run is shown only as the newest (the monitor opening): a newer
        run started elsewhere then takes its place.
        """
        if not self.active:
            follower = runs.RunFollower(self.store, run_id)
            follower.start()  # before loading: an event written meanwhile is read twice, never missed
            self.state = RunState.load(
                self.store, run_id, owner=self.owner_elsewhere(run_id), judging=follower.judging()
            )
            self.state.note(runs.last_events(self.store, run_id, LOG_ON_OPEN))
            self._follower, self._pinned = follower, pinned
            self._owner_checked = self._counted = time.monotonic()
            self._counters = runs.actor_counters(self.store, run_id)
        return self.state

    def follow_tick(self, now: float | None = None) -> Changes | None:
        """Fold in what the store says the shown run did since the last look; what changed, or None.

        One indexed query when nothing moved; the new event rows, and who owns the run, when it did.
        """
        follower = self._follower
        if follower is None and not self.active and self.state.run_id is None:
            newest = runs.newest_run_id(self.store)  # nothing shown yet: the first run started elsewhere
            if newest is None:
                return None
            self.show(newest, pinned=False)
            return Changes(run=True, new_rows=True, rejections=True, log=len(self.state.log))
        if follower is None or self.active or self.state.run_id != follower.run_id:
            return None
        now = time.monotonic() if now is None else now
        if not self._pinned:
            newest = runs.newest_run_id(self.store)
            if newest is not None and newest != follower.run_id:
                self.show(newest, pinned=False)
                return Changes(run=True, new_rows=True, rejections=True, log=len(self.state.log))
        moved = follower.moved()
        if not moved and now - self._owner_checked < OWNER_CHECK_S:
            return None
        changes = Changes()
        if moved:
            changes = self.state.apply(follower.new_events())
            if changes.rejections:
                self.state.reload_rejections(self.store)
            if any(r.status == TranscriptStatus.ASSESSING for r in self.state.rows.values()):
                self.state.judging_from_store(follower.judging(), changes)
            if now - self._counted >= COUNTERS_S:
                self._counters, self._counted = runs.actor_counters(self.store, follower.run_id), now
        before = (self.state.status, self.state.owner)
        self._owner_checked = now
        self.state.set_owner(self.owner_elsewhere(follower.run_id), follower.stored_status)
        if (self.state.status, self.state.owner) != before:
            changes.run = True
            self._counters, self._counted = runs.actor_counters(self.store, follower.run_id), now
        return changes or None

    @property
    def following(self) -> bool:
        """The run shown is worked on by another process, and drawn here from the store."""
        return self._follower is not None and not self.active and self.state.status == "elsewhere"

    def watch(self, transcript_id: str | None) -> None:
        """The transcript a face shows now (its replies are streamed while a run here writes them)."""
        self.watched = transcript_id

    def _streams(self, transcript_id: str) -> bool:
        return transcript_id == self.watched  # read on the run's thread: one attribute, set on the app's

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

    def stats(self) -> dict[str, ActorStats]:
        """Each actor's counters: the live run's, else the shown run's as its events in the store count them."""
        supervisor = self.supervisor
        return dict(supervisor.stats) if supervisor is not None else dict(self._counters)

    # --- the run --------------------------------------------------------------------------

    def start(self, run_id: str, settings: RunSettings, *, only: set[str] | None = None) -> None:
        """Start (or resume) ``run_id`` on the run's own thread; `drain` collects what it did."""
        if self.active:
            raise RuntimeError("a run is live already")
        self.state = RunState.load(self.store, run_id)
        self.state.note(runs.last_events(self.store, run_id, LOG_ON_OPEN))
        self.state.status = "starting"
        self._counters = runs.actor_counters(self.store, run_id)
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
            self.store,
            self.pack,
            run_id,
            settings,
            make_router=self.make_router,
            preload_models=True,
            stream_replies=self._streams,
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
            self.state.streaming.clear()
            self.settings = None
            changes.run = True
            run_id = self.state.run_id
            if run_id is not None:  # no longer live here: counted and followed from the store from now on
                self._counters = runs.actor_counters(self.store, run_id)
                self._follower, self._pinned = runs.RunFollower(self.store, run_id), True
                self._follower.start()
                self._owner_checked = self._counted = time.monotonic()
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
