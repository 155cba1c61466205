"""A section whose screen is still to come: says what exists and what to run meanwhile.

It reads the store once when shown, and never fails: a missing table or an
older workspace just means "nothing yet".
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown

from ..widgets.app_header import AppHeader


class PlaceholderScreen(Screen):
    SECTION = ""

    def compose(self) -> ComposeResult:
        yield AppHeader(self.SECTION)
        with VerticalScroll(classes="placeholder"):
            yield Markdown("", id="placeholder-text")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.query_one("#placeholder-text", Markdown).update(self.safe_text())

    def on_mount(self) -> None:
        self.query_one("#placeholder-text", Markdown).update(self.safe_text())

    def safe_text(self) -> str:
        try:
            return self.text()
        except Exception as err:  # noqa: BLE001 - a placeholder must never take the app down
            return f"# {self.SECTION.title()}\n\nNothing to show yet ({type(err).__name__})."

    def text(self) -> str:  # pragma: no cover - overridden
        return ""
