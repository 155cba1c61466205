"""The one-line header: the screens (with their keys) and what the app is working on.

Why custom rather than Textual's Header: at 80 columns the useful facts are
"which screen, which keys reach the others, which workspace, which run,
which models" — a centred title cannot carry that, and a second line would
cost the monitor a row it needs.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

SCREENS = (
    ("monitor", "Monitor"),
    ("review", "Review"),
    ("chat", "Chat"),
    ("train", "Train"),
    ("eval", "Eval"),
    ("optimize", "Optimize"),
)


class AppHeader(Horizontal):
    DEFAULT_CSS = """
    AppHeader { height: 1; dock: top; background: $panel; color: $text; }
    AppHeader #nav { width: auto; padding: 0 1 0 0; }
    AppHeader #where { width: 1fr; text-align: right; color: $text-muted; text-overflow: ellipsis; text-wrap: nowrap;
                       padding: 0 1; }
    """

    active: reactive[str] = reactive("monitor")
    where: reactive[str] = reactive("")

    def __init__(self, active: str) -> None:
        super().__init__()
        self.set_reactive(AppHeader.active, active)

    def compose(self) -> ComposeResult:
        yield Static(self._nav(), id="nav", markup=True)
        yield Static(id="where", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "context_line", self._set_where, init=True)

    def _set_where(self, value: str) -> None:
        self.query_one("#where", Static).update(value, layout=False)
        self.query_one("#where", Static).tooltip = value

    def _nav(self) -> str:
        parts = [" [b]coach[/b] "]
        for number, (mode, label) in enumerate(SCREENS, start=1):
            if mode == self.active:
                parts.append(f"[reverse b]{number} {label}[/]")
            else:
                parts.append(f"[@click=app.switch_mode('{mode}')][b $accent]{number}[/] {label}[/]")
        return " ".join(parts)
