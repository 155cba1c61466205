"""The `coach` terminal app: monitor a run, review its fixups, chat offline.

Five sections, each a Textual *mode* with its own screen stack, reached with
the keys 1–6, by clicking the header, or from the command palette (ctrl+p),
which also lists every action, run and conversation. The app owns what must
outlive a screen switch: the `RunController` (the live supervisor and its
folded state) and the chat store. Screens subscribe to `run_changes`, a
signal fired at most ten times a second with what a burst of pipeline
events changed.

Model work never runs on the event loop: the pipeline's and the chat's
llama.cpp calls run in worker threads inside the backends; a run works on a
thread and loop of its own (`RunController`), the chat stream is a Textual
worker on the app's loop. Quitting with a run live asks first, stops the run
and waits for its thread, so no llama.cpp call outlives the interpreter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal

from actors import heap
from actors.chat.engine import DEFAULT_CHAT_MODEL, chat_backend
from actors.pack.loader import DomainPack
from actors.safety import preload_safety_net
from state import pipeline as db
from state.chat import ChatStore
from state.errors import CoachError

from .context import AppContext
from .palette import ConversationsProvider, RunsProvider
from .run_control import (
    RunController,
    RunRequest,
    describe_backends,
    generates_locally,
)
from .run_state import Changes
from .screens.chat import ChatScreen
from .screens.confirm_quit import ConfirmQuit
from .screens.eval import EvalScreen
from .screens.help import HelpScreen, HelpSection, help_sections
from .screens.monitor import MonitorScreen
from .screens.optimize import OptimizeScreen
from .screens.review import ReviewScreen
from .screens.run_form import RunForm
from .screens.side_by_side import SideBySideScreen
from .screens.train import TrainScreen

SECTIONS = ("monitor", "review", "chat", "train", "eval", "optimize")
FOLLOW_S = 1.0
"""How often a run owned by another process is looked at (one indexed query when it did not move)."""
SCREENSHOTS = "screenshots"
"""The workspace folder screenshots are saved in (created on the first one)."""


def short_path(path: Path, limit: int = 24) -> str:
    """The end of the path (`…/parent/ws`): the end is what tells workspaces apart; the tooltip has it all."""
    text = str(path)
    home = str(Path.home())
    if text.startswith(home + "/"):
        text = "~" + text[len(home) :]
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :]


class CoachApp(App):
    TITLE = "coach"
    CSS_PATH = "app.tcss"
    MODES = {
        "monitor": MonitorScreen,
        "review": ReviewScreen,
        "chat": ChatScreen,
        "train": TrainScreen,
        "eval": EvalScreen,
        "optimize": OptimizeScreen,
    }
    DEFAULT_MODE = "monitor"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    COMMANDS = App.COMMANDS | {RunsProvider, ConversationsProvider}
    BINDINGS = [
        *[Binding(str(n), f"switch_mode('{mode}')", mode.title(), show=False) for n, mode in enumerate(SECTIONS, 1)],
        Binding("question_mark", "help", "Help", tooltip="This help: the keys of every screen"),
        # F1 also over a form or dialog (a modal hides the app's other keys); `?` stays typeable in fields.
        Binding("f1", "help", "Help", show=False, priority=True, tooltip="This help: the keys of every screen"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks first while a run is live)"),
    ]
    HELP_SCREENS: tuple[tuple[str, type[Screen]], ...] = (
        ("Monitor", MonitorScreen),
        ("New run form", RunForm),
        ("Review", ReviewScreen),
        ("Chat", ChatScreen),
        ("Side by side", SideBySideScreen),
        ("Train", TrainScreen),
        ("Eval", EvalScreen),
        ("Optimize", OptimizeScreen),
    )
    """The screens whose keys the help screen (and the README's table) lists, in this order."""

    context_line: reactive[str] = reactive("")
    """Workspace · run · backends, drawn by every screen's header."""
    chat_model: reactive[str] = reactive(DEFAULT_CHAT_MODEL)

    def __init__(
        self,
        context: AppContext,
        pack: DomainPack,
        *,
        router_factory: Callable[[], object] | None = None,
        chat_backend_factory: Callable[[str], object] | None = None,
        chat_store: ChatStore | None = None,
        config_path: Path | None = None,
        preload_safety: bool = False,
    ) -> None:
        super().__init__()
        self.preload_safety = preload_safety
        """Load the chat's crisis net in a thread once the first screen is drawn (`run_app` does)."""
        self.context = context
        self.pack = pack
        self.store = context.store
        self.config_path = config_path
        self.controller = RunController(self.store, pack, router_factory=router_factory, config_path=config_path)
        self.chat_store = chat_store or ChatStore()
        self.make_chat_backend = chat_backend_factory or chat_backend
        self.run_changes: Signal[Changes] = Signal(self, "run-changes")
        self.backends_line = describe_backends(config_path) if router_factory is None else "scripted backends"
        self.local_generation = router_factory is None and generates_locally(config_path)
        self._rejudge: dict[str, set[str]] = {}
        self.judging: set[str] = set()
        """Reviewed transcripts being judged again right now (their decisions can no longer be undone)."""

    def on_mount(self) -> None:
        self.refresh_context()
        heap.tune()
        self.call_after_refresh(self._freeze_heap)
        if self.preload_safety:
            self.call_after_refresh(preload_safety_net, self.pack)
        self.set_interval(FOLLOW_S, self._follow_elsewhere)

    def on_unmount(self) -> None:
        """Leaving by any path: ask the live run to stop (`run_app` then waits for it; every step is committed)."""
        self.controller.stop()

    def _follow_elsewhere(self) -> None:
        """A run shown here but owned by another process is followed from the store."""
        changes = self.controller.follow_tick()
        if changes:
            self._on_changes(changes)

    async def action_quit(self) -> None:
        """Quit; with a run live, ask first, then stop it and wait for its thread before exiting."""
        if not self.controller.active:
            self.exit(0)
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self.run_worker(self._stop_and_exit(), name="quit", group="quit", exclusive=True)

        self.push_screen(ConfirmQuit(self.controller.state.run_id or "the run"), answered)

    async def _stop_and_exit(self) -> None:
        self.notify("Stopping the run… the calls in flight end first; nothing is lost.", timeout=30)
        self.controller.stop()
        while self.controller.active:
            await anyio.sleep(0.05)
        self.exit(0)

    @staticmethod
    def _freeze_heap() -> None:
        """Move what exists after start-up out of the garbage collector's sight.

        A full (generation 2) collection walks every object in the process —
        the app's widgets, styles and imported modules included — with the
        interpreter lock held, which stalled the screen for 75–115 ms at a
        time while a fast run made garbage. What exists once the app is up
        lives as long as the app, so it need never be scanned again (see `heap`).
        """
        heap.settle()

    async def load_model(self, load: Callable[[], object]) -> None:
        """Load a GGUF model in a worker thread (never on the loop), then redraw every cell.

        The full repaint is a safety net for a terminal whose output
        llama-cpp-python silenced during a load (see `actors.backends.fd_guard`,
        which the model cache applies); with it in force it redraws what is already there.
        """
        try:
            await anyio.to_thread.run_sync(load)
        finally:
            if self.is_running:
                self.screen.refresh(self.screen.region)  # the whole screen region: a full update

    # --- help and screenshots --------------------------------------------------------------

    @classmethod
    def help_sections(cls) -> list[HelpSection]:
        """Every screen's keys, from their BINDINGS (the help screen and the README's table)."""
        palette = (cls.COMMAND_PALETTE_BINDING, "Command palette: every action, run and conversation")
        return help_sections(cls, cls.HELP_SCREENS, [palette])

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)  # F1 again closes it
            return
        self.push_screen(HelpScreen(self.help_sections(), current=type(self.screen)))

    @property
    def screenshots_dir(self) -> Path:
        return self.context.workspace / SCREENSHOTS

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Save an SVG of the screen in `<workspace>/screenshots/` (created) and say where.

        Textual's default saves into the platform's Downloads folder, which a
        server or a fresh account does not have: the palette's Screenshot
        command then only said "Failed to save screenshot". Returns the path.
        """
        folder = Path(path) if path else self.screenshots_dir
        if not filename:
            stamp = datetime.now().strftime(time_format or "%Y-%m-%d_%H-%M-%S_%f")
            filename = f"coach-{self.current_mode}-{stamp}.svg"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder))
        except OSError as err:
            self.notify(
                f"Could not save the screenshot in {folder}: {err.strerror or err}",
                title="Screenshot",
                severity="error",
                markup=False,
            )
            return None
        self.notify(f"Saved {saved}", title="Screenshot", timeout=8, markup=False)
        return saved

    # --- header -----------------------------------------------------------------------------

    def refresh_context(self) -> None:
        workspace = short_path(self.context.workspace)
        state = self.controller.state
        status = "running in another process" if state.status == "elsewhere" else state.status
        run = f"{state.run_id} ({status})" if state.run_id else "no run"
        self.context_line = f"{run} · {workspace} · {self.backends_line}"

    def _on_changes(self, changes: Changes) -> None:
        if changes.run:
            self.refresh_context()
        self.run_changes.publish(changes)

    # --- runs -------------------------------------------------------------------------------

    def action_new_run(self) -> None:
        if self.controller.active:
            self.notify("A run is live. Stop it (s) first, or wait for it to finish.", severity="warning")
            return

        def chosen(request: RunRequest | None) -> None:
            if request is not None:
                self.start_run(request)

        self.push_screen(RunForm(local_models=self.local_generation), chosen)

    def start_run(self, request: RunRequest) -> str | None:
        """Plan a new run in the store and start it; returns its id."""
        if self.controller.active:
            self.notify("A run is live already.", severity="warning")
            return None
        try:
            run_id = self.controller.create_run(request)
            settings = self.controller.settings_to_resume(run_id)
        except (ValueError, CoachError) as err:
            self.notify(f"Could not plan the run: {err}", severity="error")
            return None
        self._start(run_id, settings)
        return run_id

    def resume_run(self, run_id: str | None) -> None:
        """Continue a run's unfinished transcripts (the same as `coach run --resume`)."""
        if run_id is None:
            self.notify("No run to resume: start one with n.", severity="warning")
            return
        if self.controller.active:
            self.notify("A run is live already.", severity="warning")
            return
        owner = self.controller.owner_elsewhere(run_id)
        if owner is not None:
            self.controller.show(run_id)
            self._on_changes(Changes(run=True, new_rows=True, rejections=True))
            self.notify(
                f"Run {run_id} is running in another process ({owner}): following it here. "
                "Stop it there to resume it here.",
                severity="warning",
                timeout=8,
            )
            return
        try:
            settings = self.controller.settings_to_resume(run_id)
        except CoachError as err:
            self.notify(str(err), severity="error", timeout=8)
            return
        self.switch_mode("monitor")
        self._start(run_id, settings)

    def view_run(self, run_id: str) -> None:
        if self.controller.active and self.controller.state.run_id != run_id:
            self.notify("A run is live; stop it before viewing another.", severity="warning")
            return
        self.controller.show(run_id)
        self.refresh_context()
        self.switch_mode("monitor")
        self._on_changes(Changes(run=True, new_rows=True, rejections=True))

    def _start(self, run_id: str, settings, only: set[str] | None = None) -> None:
        self.switch_mode("monitor")
        self.run_worker(
            self._drive(run_id, settings, only), name=f"run {run_id}", group="run", exclusive=True, exit_on_error=False
        )

    async def _drive(self, run_id: str, settings, only: set[str] | None) -> None:
        try:
            summary = await self.controller.drive(run_id, settings, self._on_changes, only=only)
        finally:
            self.judging -= only or set()
        self.refresh_context()
        if summary is not None:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
            rate = f" · pass {summary.pass_rate:.0%}" if summary.pass_rate is not None else ""
            self.notify(f"Run {run_id} {self.controller.state.status}: {counts}{rate}", timeout=6)
        else:
            self.notify(
                self.controller.state.errors[-1] if self.controller.state.errors else "The run failed.",
                severity="error",
                timeout=10,
            )
        self._next_rejudge()

    def action_pause_run(self) -> None:
        c = self.controller
        if not c.active:
            self.notify("No live run to pause.", severity="warning")
            return
        if c.paused:
            c.resume()
            self.notify("Run continues.", timeout=2)
        else:
            c.pause()
            self.notify("Paused: calls in flight finish, nothing new starts. p continues.", timeout=3)
        self._on_changes(Changes(run=True))

    def action_stop_run(self) -> None:
        if not self.controller.active:
            self.notify("No live run to stop.", severity="warning")
            return
        self.controller.stop()
        self.notify("Stopping… nothing is lost; u resumes it later.", timeout=3)
        self._on_changes(Changes(run=True))

    def rejudge(self, transcript_id: str) -> None:
        """A reviewed transcript is back to `assessing`: have it judged again now, or after the live run."""
        transcript = db.transcript(self.store, transcript_id)
        if transcript is None or transcript.run_id is None:
            return
        self._rejudge.setdefault(transcript.run_id, set()).add(transcript_id)
        if not self.controller.active:
            self._next_rejudge()

    def _next_rejudge(self) -> None:
        if self.controller.active or not self._rejudge:
            return
        run_id, ids = self._rejudge.popitem()
        if self.controller.owner_elsewhere(run_id) is not None:
            return  # the process that owns the run judges them on its next pass
        try:
            settings = self.controller.settings_to_resume(run_id)
        except CoachError as err:
            self.notify(str(err), severity="error", timeout=8)
            return
        self.notify(f"Judging {len(ids)} reviewed transcript(s) again.", timeout=3)
        self.judging |= ids
        self.run_worker(
            self._drive(run_id, settings, ids),
            name=f"rejudge {run_id}",
            group="run",
            exclusive=True,
            exit_on_error=False,
        )

    def open_transcript(self, transcript_id: str) -> None:
        transcript = db.transcript(self.store, transcript_id)
        if transcript is None:
            return
        if transcript.run_id and not self.controller.active:
            self.controller.show(transcript.run_id)
        self.switch_mode("monitor")
        screen = self.screen
        if isinstance(screen, MonitorScreen):
            screen.follow = False
            self._on_changes(Changes(run=True, new_rows=True))
            screen.call_after_refresh(screen.query_one("#transcripts").select, transcript_id)

    # --- chat -------------------------------------------------------------------------------

    def open_conversation(self, conversation_id: str) -> None:
        self.switch_mode("chat")

        async def open_it() -> None:
            screen = self.screen
            if isinstance(screen, ChatScreen):
                await screen.open(conversation_id)

        self.call_after_refresh(open_it)

    def _on_chat(self, action: str) -> Callable[[], None]:
        def run() -> None:
            self.switch_mode("chat")
            self.call_after_refresh(lambda: self.screen.run_action(action))

        return run

    # --- palette ----------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for number, mode in enumerate(SECTIONS, 1):
            yield SystemCommand(
                f"Go to {mode.title()} ({number})",
                f"Switch to the {mode} screen",
                lambda mode=mode: self.switch_mode(mode),
            )
        yield SystemCommand("New run…", "Plan and start a run (monitor: n)", self.action_new_run)
        yield SystemCommand("Pause or continue the run", "Monitor: p", self.action_pause_run)
        yield SystemCommand("Stop the run", "Monitor: s — nothing is lost, resume later", self.action_stop_run)
        yield SystemCommand(
            "Resume the run shown",
            "Monitor: u — continue its unfinished transcripts",
            lambda: self.resume_run(self.controller.state.run_id),
        )
        yield SystemCommand("Review: accept this fixup", "Review: a", lambda: self._in("review", "decide(True)"))
        yield SystemCommand("Review: reject this fixup", "Review: x", lambda: self._in("review", "decide(False)"))
        yield SystemCommand("Review: skip to the next fixup", "Review: s", lambda: self._in("review", "step(1)"))
        yield SystemCommand(
            "Review: undo the last decision", "Review: u — until it is judged again", lambda: self._in("review", "undo")
        )
        yield SystemCommand("Chat: new conversation", "Chat: ctrl+n", self._on_chat("new_conversation"))
        yield SystemCommand(
            "Chat: choose the model…", "Chat: ctrl+o — bundled, exported or any GGUF", self._on_chat("choose_model")
        )
        yield SystemCommand("Chat: show or hide support lines", "Chat: ctrl+r", self._on_chat("toggle_resources"))
        yield SystemCommand(
            "Chat: side by side…",
            "Chat: ctrl+y — one message to two models, e.g. the base and the fine-tuned",
            self._on_chat("side_by_side"),
        )
        yield SystemCommand("Help: the keys of every screen", "? or F1", self.action_help)
        yield SystemCommand(
            "Screenshot (SVG into the workspace)",
            f"Saved in {self.screenshots_dir}",
            lambda: self.set_timer(0.1, self.deliver_screenshot),
        )
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":  # ours above says where it goes
                yield command

    def _in(self, mode: str, action: str) -> None:
        self.switch_mode(mode)
        self.call_after_refresh(lambda: self.screen.run_action(action))


def run_app(context: AppContext) -> None:
    pack = context.pack()  # a broken pack is reported before the screen opens
    context.store  # noqa: B018 - a workspace problem is reported before the screen opens too
    app = CoachApp(context, pack, preload_safety=True)
    try:
        app.run()
    finally:
        # However the app ended, no run thread may still be inside llama.cpp when the interpreter
        # exits: that crashed the process (exit 139). Stop it, wait for it, free the models.
        app.controller.shutdown()
