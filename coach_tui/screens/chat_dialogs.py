"""The chat's small modals: rename a conversation, its own settings, search every conversation.

Each one only collects input and hands it back (`dismiss`); the Chat screen
acts on it. Escape always leaves without a change.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from actors.chat.settings import LIMITS, parse_settings
from state.chat import ChatStore

from ..widgets.conversation_list import describe_summary

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 76; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
                     background: $surface; padding: 0 1; }}
{name} .title {{ text-style: bold; padding: 0 0 1 0; }}
{name} .hint {{ color: $text-muted; }}
{name} .problem {{ color: $error; height: auto; }}
{name} Horizontal {{ height: auto; align-horizontal: right; }}
{name} Button {{ margin: 0 0 0 1; }}
"""


class RenameDialog(ModalScreen[str | None]):
    """A new title for a conversation (blank: its first message's words again)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="RenameDialog")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.current = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Rename the conversation", classes="title")
            yield Input(self.current, id="title", placeholder="blank: its first message's words")
            yield Static("enter saves · esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChatSettingsDialog(ModalScreen[dict | None]):
    """This conversation's system prompt, temperature, reply length and context length.

    Hands back the settings dict (`actors.chat.settings.parse_settings`); a field with a mistake
    keeps the dialog open and says what is wrong with it.
    """

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ChatSettingsDialog")
        + """
    ChatSettingsDialog TextArea { height: 4; }
    ChatSettingsDialog .row { height: auto; }
    ChatSettingsDialog .row Label { width: 22; padding: 1 1 0 0; }
    ChatSettingsDialog .row Input { width: 1fr; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, settings: dict, *, default_prompt: str, defaults: dict[str, str]) -> None:
        super().__init__()
        self.settings = settings
        self.default_prompt = default_prompt
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        def text(key: str) -> str:
            value = self.settings.get(key)
            return "" if value is None else str(value)

        with Vertical():
            yield Static("This conversation's settings", classes="title")
            yield Label("System prompt (blank: the pack's)")
            yield TextArea(self.settings.get("system_prompt") or "", id="system_prompt", soft_wrap=True)
            for key, label in (
                ("temperature", "Temperature"),
                ("max_tokens", "Max tokens per reply"),
                ("context_length", "Context length"),
            ):
                low, high = LIMITS[key]
                with Horizontal(classes="row"):
                    yield Label(label)
                    yield Input(
                        text(key), id=key, placeholder=f"default {self.defaults.get(key, '')} · {low:g}–{high:g}"
                    )
            yield Static("", id="problems", classes="problem")
            with Horizontal():
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#temperature", Input).focus()

    def _raw(self) -> dict[str, str]:
        raw = {key: self.query_one(f"#{key}", Input).value for key in ("temperature", "max_tokens", "context_length")}
        raw["system_prompt"] = self.query_one("#system_prompt", TextArea).text
        return raw

    def action_save(self) -> None:
        settings, problems = parse_settings(self._raw())
        if problems:
            self.query_one("#problems", Static).update(Content("\n".join(problems.values())))
            self.query_one(f"#{next(iter(problems))}", Input).focus()
            return
        self.dismiss(settings)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchDialog(ModalScreen[str | None]):
    """Every conversation that holds all the words typed, with where they show; enter opens one."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="SearchDialog")
        + """
    SearchDialog OptionList { height: auto; max-height: 14; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "results", show=False)]

    def __init__(self, store: ChatStore, query: str = "") -> None:
        super().__init__()
        self.store = store
        self.initial = query

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Search conversations", classes="title")
            yield Input(self.initial, id="query", placeholder="words to find, in any order")
            yield OptionList(id="hits")
            yield Static("↓ to the results · enter opens · esc closes", classes="hint", id="hint")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.initial:
            self.search(self.initial)

    @on(Input.Changed, "#query")
    def _changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        hits = self.query_one("#hits", OptionList)
        if hits.option_count:
            self.dismiss(hits.get_option_at_index(hits.highlighted or 0).id)

    @work(thread=True, exclusive=True, group="search")
    def search(self, query: str) -> None:
        """Read the conversations in a thread (a long history is many files), then show the hits."""
        hits = self.store.search(query) if query.strip() else []
        self.app.call_from_thread(self._show, query, hits)

    def _show(self, query: str, hits: list) -> None:
        if query != self.query_one("#query", Input).value:
            return  # typed on meanwhile: a newer search follows
        listing = self.query_one("#hits", OptionList)
        listing.clear_options()
        for hit in hits:
            prompt = Content.assemble(
                hit.summary.title, (f"\n{describe_summary(hit.summary)}", "dim"), (f"\n{hit.snippet}", "italic")
            )
            listing.add_option(Option(prompt, id=hit.summary.id))
        if hits:
            listing.highlighted = 0
        found = f"{len(hits)} conversation{'' if len(hits) == 1 else 's'}" if query.strip() else "type to search"
        self.query_one("#hint", Static).update(f"{found} · ↓ to the results · enter opens · esc closes")

    def action_results(self) -> None:
        self.query_one("#hits", OptionList).focus()

    @on(OptionList.OptionSelected, "#hits")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
