"""A yes/no question before an act that is hard to take back (rejecting a transcript, quitting a live run).

One modal for every such question, so they all answer to the same keys:
`y` does it, `n` or Escape does not, and the buttons say which key is which.
The safe answer has the focus, so a stray Enter never does the act.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 64; max-width: 100%; height: auto; max-height: 100%; border: thick $warning;
                         background: $surface; padding: 0 1; }
    Confirm #title { text-style: bold; padding: 1 0 0 0; }
    Confirm #question { padding: 1 0; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin: 0 0 0 1; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(
        self,
        question: str | Content | Text,
        *,
        title: str = "",
        yes: str = "Yes",
        no: str = "Cancel",
        variant: str = "warning",
    ) -> None:
        super().__init__()
        self.confirm_question = question
        self.confirm_title = title
        self.confirm_yes = yes
        self.confirm_no = no
        self.confirm_variant = variant

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.confirm_title:
                yield Static(self.confirm_title, id="title", markup=False)
            yield Static(self.confirm_question, id="question")
            with Horizontal():
                yield Button(f"{self.confirm_yes} (y)", variant=self.confirm_variant, id="yes")
                yield Button(f"{self.confirm_no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
