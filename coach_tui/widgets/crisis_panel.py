"""Support lines, shown when a message carries crisis signals — beside the conversation, never in its way.

The panel is decided by the pack's safety net (`actors.safety`) from the
person's own words, before and regardless of the model's reply. It does not take focus, does not block
typing, and stays until hidden (ctrl+r shows or hides it at any time, so the
lines are always one key away). It is kept short so that at 80×24 the
conversation stays visible above it. The text is data (the resources of the
person's country in the pack's safety file, else the international ones), so
it can be localised without code.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown


class CrisisPanel(VerticalScroll):
    DEFAULT_CSS = """
    CrisisPanel { height: auto; max-height: 11; border: round $primary; border-title-color: $text;
                  border-subtitle-color: $text-muted; padding: 0 1; display: none; background: $primary 10%; }
    CrisisPanel.-shown { display: block; }
    CrisisPanel Markdown { margin: 0; padding: 0; background: transparent; }
    CrisisPanel Markdown > * { margin: 0; }
    """
    can_focus = False

    def __init__(self, text: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.border_title = "Support is available"
        self.border_subtitle = "ctrl+r hides · shows again"

    def compose(self) -> ComposeResult:
        yield Markdown(self.text)

    def set_text(self, text: str) -> None:
        """Another country's lines (the person changed the setting)."""
        if text != self.text:
            self.text = text
            if self.is_mounted:
                self.query_one(Markdown).update(text)

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")

    def show(self, shown: bool = True) -> None:
        self.set_class(shown, "-shown")
