"""Choose the country whose support lines the chat shows.

The country is the person's setting, saved with their private chat files; it
starts from `COACH_COUNTRY` or the system locale (see the safety net's
`default_country`), with an international fallback for anywhere the pack
lists no lines.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class CountryPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    CountryPicker { align: center middle; }
    CountryPicker > Vertical { width: 60; max-width: 100%; height: auto; max-height: 90%; border: thick $primary;
                               background: $surface; padding: 0 1; }
    CountryPicker #title { text-style: bold; padding: 0 0 1 0; }
    CountryPicker OptionList { height: auto; max-height: 14; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, countries: dict[str, str], current: str) -> None:
        super().__init__()
        self.countries = countries
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(f"{code} — {name}", id=code) for code, name in self.countries.items()]
        with Vertical():
            yield Static(f"Support lines for (now: {self.current})", id="title")
            yield OptionList(*options, id="countries")

    def on_mount(self) -> None:
        listing = self.query_one(OptionList)
        codes = list(self.countries)
        if self.current in codes:
            listing.highlighted = codes.index(self.current)
        listing.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
