"""Starting, pausing, stopping and resuming a pipeline run from inside the app.

The supervisor is the same one `coach run` uses (never a copy): this module
only plans a run the way the headless command does, runs the supervisor on a
thread and event loop of its own (see `RunController` for why), and turns
its event stream into *bursts* for the screen.

Why bursts: the supervisor publishes an event for every step, so a fast
backend produces thousands a second. Every 100 ms the app takes whatever has
arrived, folds it all into `RunState` and hands the screen one `Changes`.
The screen therefore redraws at most ten times a second however fast the
run goes, and the loop stays free for keystrokes.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from actors.curation import CurationSettings
from actors.pack.loader import DomainPack
from actors.run_plan import DEFAULT_LENGTHS, persona_records, plan_run
from actors.supervisor import GenerationSettings, RunSummary, Supervisor
from state import pipeline as db
from state.models import Run
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


def settings_for(request: RunRequest) -> tuple[GenerationSettings, CurationSettings]:
    """The supervisor's generation and curation settings for a request."""
    settings = GenerationSettings(in_flight=request.in_flight)
    if request.max_tokens:
        settings.max_tokens_user = min(settings.max_tokens_user, request.max_tokens)
        settings.max_tokens_assistant = min(settings.max_tokens_assistant, request.max_tokens)
    return settings, CurationSettings(review_mode=request.review_mode)


def settings_for_run(run: Run | None) -> tuple[GenerationSettings, CurationSettings]:
    """Settings to resume a run with: what it was started with, as its config recorded them."""
    config = run.config if run is not None and isinstance(run.config, dict) else {}
    review_mode = config.get("review_mode") if config.get("review_mode") in REVIEW_MODES else "auto"
    return settings_for(RunRequest(in_flight=int(config.get("in_flight") or 4), review_mode=review_mode,
                                   max_tokens=config.get("max_tokens")))


def default_router_factory(config_path: Path | None = None) -> Callable[[], object]:
    def make():
        from actors.backends.router import ModelRouter
        from actors.run_config import load_run_config

        return ModelRouter.from_config(load_run_config(config_path))

    return make


def generates_locally(config_path: Path | None = None) -> bool:
    """Whether the simulator or the assistant runs on a local llama.cpp model (slow on a CPU)."""
    try:
        from actors.run_config import load_run_config

        cfg = load_run_config(config_path)
        backends = cfg.all_backends()
        return any(backends[name].kind == "llama_cpp" for role in ("user_sim", "assistant")
                   for name in cfg.role(role).backends)
    except Exception:  # noqa: BLE001 - a broken config is the form's to report, not this hint's
        return False


def describe_backends(config_path: Path | None = None) -> str:
    """"role → backend" in a few words for the header: which models this app's runs would use."""
    try:
        from actors.run_config import ROLES, load_run_config

        cfg = load_run_config(config_path)
        backends = cfg.all_backends()
        used = {}
        for role in ROLES:
            for name in cfg.role(role).backends:
                used.setdefault(name, getattr(backends[name], "model", None) or backends[name].kind)
        return ", ".join(f"{name}: {model}" for name, model in used.items())
    except Exception as err:  # the header must never take the app down; the form will say more
        return f"run config problem: {str(err).splitlines()[0]}"


async def _load_models(router) -> None:
    """Load the run's in-process models before the supervisor starts (in a worker thread).

    The supervisor counts tokens inline (to fit a conversation into the
    window), and a llama.cpp backend loads its model on first use: loading
    here keeps that first count from stalling the run's loop for seconds.
    """
    from actors.run_config import ROLES

    seen = set()
    for role in ROLES:
        try:
            backends = router.backends_for(role)
        except Exception:  # noqa: BLE001 - a role the config does not map is not ours to load
            continue
        for backend in backends:
            load = getattr(backend, "pool", None) or getattr(backend, "loaded", None)
            if id(backend) not in seen and getattr(backend, "kind", "") == "llama_cpp" and load is not None:
                seen.add(id(backend))
                await anyio.to_thread.run_sync(load)


_FINISHED = object()
"""Put on the event queue by the run's thread when the run is over (after its last event)."""


class RunController:
    """One live run at a time, owned by the app so it outlives screen switches.

    The supervisor runs on a thread of its own with its own event loop. Why
    not on the app's loop: with an instant backend the supervisor is pure
    Python — store commits, prompt building, scoring — spread over hundreds
    of worker tasks, and a loop shared with them wakes the screen only after
    every ready task has had its turn (measured: p99 lag ≈ 0.4–0.8 s with 64
    transcripts in flight). On its own thread the screen's loop waits at
    most one interpreter switch interval for the GIL. The run's thread only
    forwards events onto a thread-safe queue; folding them into `RunState`
    and drawing happen on the app's thread, ten times a second at most.
    Pause, continue and stop are handed to the run's loop through its token.
    """

    def __init__(self, store: Store, pack: DomainPack, *, router_factory: Callable[[], object] | None = None,
                 refresh_interval: float = REFRESH_INTERVAL_S) -> None:
        self.store = store
        self.pack = pack
        self.router_factory = router_factory or default_router_factory()
        self.refresh_interval = refresh_interval
        self.state = RunState()
        self.supervisor: Supervisor | None = None
        self.summary: RunSummary | None = None
        self.error: str | None = None
        self.dropped = 0
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token = None

    # --- planning -------------------------------------------------------------------------

    def create_run(self, request: RunRequest) -> str:
        """Plan and record a new run exactly as `coach run` does; returns its id."""
        seed = request.seed if request.seed is not None else secrets.randbelow(10_000)
        run_id = f"run-{seed}-{secrets.token_hex(3)}"
        plan = plan_run(self.pack, run_id, transcripts=request.transcripts, seed=seed, lengths=request.lengths)
        db.create_run(
            self.store, run_id, kind="generate", domain=self.pack.name, seed=seed,
            config={"transcripts": request.transcripts, "lengths": request.lengths, "review_mode": request.review_mode,
                    "in_flight": request.in_flight, "max_tokens": request.max_tokens, "source": "tui"},
            personas=persona_records(self.pack, plan),
            transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
        )
        return run_id

    def show(self, run_id: str) -> RunState:
        """Load a run from the store for viewing (not while another one is live)."""
        if not self.active:
            self.state = RunState.load(self.store, run_id)
        return self.state

    # --- control (from the app's thread) --------------------------------------------------

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the run's own loop (supervisor primitives belong to it)."""
        if self._token is None:
            return
        try:
            anyio.from_thread.run_sync(fn, token=self._token)
        except RuntimeError:  # the run's loop has just ended
            pass

    @property
    def paused(self) -> bool:
        return self.supervisor is not None and self.supervisor.paused

    def pause(self) -> None:
        if self.supervisor is not None and not self.supervisor.paused:
            self._call(self.supervisor.pause)
            self.state.status = "paused"

    def resume(self) -> None:
        if self.supervisor is not None and self.supervisor.paused:
            self._call(self.supervisor.resume)
            self.state.status = "running"

    def stop(self) -> None:
        supervisor = self.supervisor
        if supervisor is not None:
            def stop_now() -> None:
                supervisor.resume()  # a paused worker must wake to see the cancellation promptly
                supervisor.stop()

            self._call(stop_now)
            self.state.status = "stopping"

    def stats(self) -> dict:
        return dict(self.supervisor.stats) if self.supervisor is not None else {}

    # --- the run --------------------------------------------------------------------------

    def start(self, run_id: str, settings: tuple[GenerationSettings, CurationSettings], *,
              only: set[str] | None = None) -> None:
        """Start (or resume) ``run_id`` on the run's own thread; `drain` collects what it did."""
        if self.active:
            raise RuntimeError("a run is live already")
        self.state = RunState.load(self.store, run_id)
        self.state.status = "starting"
        self.summary, self.error, self.supervisor, self._token = None, None, None, None
        self._events = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._thread_main, args=(run_id, settings, only),
                                        name=f"coach run {run_id}", daemon=True)
        self._thread.start()

    def _thread_main(self, run_id: str, settings, only: set[str] | None) -> None:
        try:
            anyio.run(self._run, run_id, settings, only)
        except BaseException as err:  # noqa: BLE001 - reported to the person, never raised into the app
            self.error = self.error or f"run {run_id} could not continue: {err}"
        finally:
            self._events.put(_FINISHED)

    async def _run(self, run_id: str, settings, only: set[str] | None) -> None:
        self._token = anyio.lowlevel.current_token()
        router = None
        try:
            router = self.router_factory()
            await _load_models(router)
            generation, curation = settings
            supervisor = Supervisor(self.store, router, self.pack, settings=generation, curation=curation)
            receive = supervisor.bus.subscribe(buffer=100_000)
            self.supervisor = supervisor
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._forward, receive)
                try:
                    selected = (lambda t: t.id in only) if only else None
                    self.summary = await supervisor.run(run_id, only=selected)
                finally:
                    supervisor.bus.close()  # the forwarder passes on what is left, then ends
            self.dropped = supervisor.bus.dropped
        except Exception as err:  # noqa: BLE001 - shown to the person, the app keeps going
            self.error = f"run {run_id} could not continue: {err}"
        finally:
            if router is not None:
                with anyio.CancelScope(shield=True):
                    await router.aclose()

    async def _forward(self, receive) -> None:
        """Pass events to the app's thread; worker-status chatter is read from `stats` instead."""
        async with receive:
            async for event in receive:
                if event.kind != "WorkerStatus":
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
            self.supervisor = None
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self.error:
                self.state.status = "failed"
                self.state.errors.append(self.error)
                changes.errors.append(self.error)
            changes.run = True
        return changes, finished

    async def drive(self, run_id: str, settings: tuple[GenerationSettings, CurationSettings],
                    on_changes: Callable[[Changes], None], *, only: set[str] | None = None) -> RunSummary | None:
        """Run ``run_id`` to the end, calling ``on_changes`` with what changed at most every tick.

        ``only`` limits the pass to some transcripts (those a reviewer sent
        back to be judged again). Failures that are not the run's own (a
        broken run config, a missing model) come back as ``None``, with the
        reason in `error` and the state; they are never raised into the app.
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
