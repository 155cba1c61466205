"""Support lines, shown when a message carries crisis signals — beside the conversation, never in its way.

The panel is decided by `actors.crisis` from the person's own words, before
and regardless of the model's reply. It does not take focus, does not block
typing, and stays until hidden (ctrl+r shows or hides it at any time, so the
lines are always one key away). It is kept short so that at 80×24 the
conversation stays visible above it. The text is data (`crisis-resources.md` in
the domain pack, else the bundled one), so it can be localised without code.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from actors.pack.loader import DEFAULT_PACK_DIR

RESOURCES_FILE = "crisis-resources.md"
FALLBACK = ("**You don't have to carry this alone.** If you are in immediate danger, call your local emergency "
            "number. In the US call or text 988; UK & ROI Samaritans 116 123; findahelpline.com lists lines "
            "worldwide.")


def resources_text(pack_root: Path | None = None) -> str:
    """The pack's resources text, else the bundled one, else a built-in minimum (never nothing)."""
    for folder in (pack_root, DEFAULT_PACK_DIR):
        if folder is None:
            continue
        try:
            return (Path(folder) / RESOURCES_FILE).read_text(encoding="utf-8")
        except OSError:
            continue
    return FALLBACK


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

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")

    def show(self, shown: bool = True) -> None:
        self.set_class(shown, "-shown")
