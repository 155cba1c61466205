"""Asked before quitting while a run is live: quitting stops it (nothing is lost; it can be resumed)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmQuit(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical { width: 60; max-width: 100%; height: auto; border: thick $warning;
                             background: $surface; padding: 0 1; }
    ConfirmQuit #question { padding: 1 0; }
    ConfirmQuit Horizontal { height: auto; align-horizontal: right; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Stop and quit"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Run [b]{self.run_id}[/b] is live. Quitting stops it: the calls in flight end, "
                "every finished step is kept, and [b]u[/b] (or `coach run --resume`) continues it later.",
                id="question",
            )
            with Horizontal():
                yield Button("Stop and quit (y)", variant="warning", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
