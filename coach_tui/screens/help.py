"""The keys of every screen, on `?` or F1 anywhere, and the README's keys table: both from the screens' BINDINGS.

Why built from BINDINGS: a help text written by hand drifts the day someone
adds a key. Here each screen's own bindings (its class and the classes of
ours it inherits from; Textual's built-in ones are left out) become its rows,
with the binding's tooltip when it has one, else its footer description. The
README's table is `keys_markdown` of the same sections, and a test compares
the two, so neither can drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

OURS = "coach_tui"
KEY_NAMES = {"escape": "esc", "question_mark": "?", "delete": "del", "backspace": "backspace"}


@dataclass(frozen=True)
class HelpSection:
    title: str
    rows: tuple[tuple[str, str], ...]
    """(keys, what they do), in the order the bindings are declared."""
    screen: type | None = None


def key_label(key: str) -> str:
    """`escape` → `esc`, `question_mark` → `?`, `f1` → `F1`, `ctrl+n` stays."""
    *mods, last = key.split("+")
    last = KEY_NAMES.get(last, last)
    if len(last) > 1 and last[0] == "f" and last[1:].isdigit():
        last = last.upper()
    return "+".join([*mods, last])


def _bindings(cls: type) -> list[Binding]:
    """The bindings declared by `cls` and the classes of ours it inherits; a subclass's key wins."""
    by_key: dict[str, Binding] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(OURS):
            continue
        declared: Sequence[BindingType] = klass.__dict__.get("BINDINGS", ())
        for binding in declared:
            binding = binding if isinstance(binding, Binding) else Binding(*binding)
            by_key.pop(binding.key, None)
            by_key[binding.key] = binding
    return list(by_key.values())


def binding_rows(cls: type, extra: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """One row per thing to do: its keys joined with `/` (`s/j`), and the tooltip or description.

    Bindings of one action with the same text share a row, however they are declared.
    """
    rows: dict[tuple[str, str], list[str]] = {}
    for binding in _bindings(cls):
        what = binding.tooltip or binding.description or binding.action
        keys = rows.setdefault((binding.action, what), [])
        keys += [key_label(k.strip()) for k in binding.key.split(",") if key_label(k.strip()) not in keys]
    return (*(("/".join(keys), what) for (_, what), keys in rows.items()), *extra)


def help_sections(
    app_cls: type, screens: Sequence[tuple[str, type]], extra_global: Iterable[tuple[str, str]] = ()
) -> list[HelpSection]:
    """ "Everywhere" (the app's bindings, plus `extra_global`), then each screen's own, in the order given."""
    sections = [HelpSection("Everywhere", binding_rows(app_cls, extra_global))]
    sections += [HelpSection(title, binding_rows(cls), cls) for title, cls in screens]
    return sections


def keys_markdown(sections: Sequence[HelpSection]) -> str:
    """The README's keys table: one row per section, its keys as `code` with what they do."""
    lines = ["| where | keys |", "|---|---|"]
    for section in sections:
        keys = " · ".join(f"`{keys}` {what}" for keys, what in section.rows)
        lines.append(f"| {section.title} | {keys} |")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Every screen's keys; the one you came from first, marked."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
                            background: $surface; padding: 0 1; }
    HelpScreen #help-title { text-style: bold; padding: 0 0 1 0; }
    HelpScreen VerticalScroll { height: auto; max-height: 1fr; }
    HelpScreen .help-section { padding: 0 0 1 0; }
    HelpScreen .-current { border-left: outer $accent; padding: 0 0 1 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, sections: Sequence[HelpSection], current: type | None = None) -> None:
        super().__init__()
        self.sections = list(sections)
        self.current = current
        ordered = [s for s in self.sections if s.screen is current and current is not None]
        self.sections = ordered + [s for s in self.sections if s not in ordered]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Keys · ? or F1 anywhere · esc closes", id="help-title")
            with VerticalScroll():
                for index, section in enumerate(self.sections):
                    here = section.screen is not None and section.screen is self.current
                    yield Static(
                        self._section_table(section, here),
                        id=f"help-{index}",
                        classes="help-section" + (" -current" if here else ""),
                    )

    @staticmethod
    def _section_table(section: HelpSection, here: bool) -> Group:
        title = Text(section.title, style="bold underline")
        if here:
            title.append("  (this screen)", style="dim")
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, min_width=8, style="bold")
        table.add_column(ratio=1)
        for keys, what in section.rows:
            table.add_row(keys, what)
        return Group(title, table)

    def action_close(self) -> None:
        self.dismiss(None)
