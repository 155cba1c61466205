"""Choose the chat model: a bundled one, a GGUF the trainer exported, a run config's server, or any path.

Each model shows its size, quantisation and context length, read from the
GGUF headers in a thread once the list is on screen (`actors.chat.models`).

Typing straight on after the choice: a person picks a model and starts
writing at once, faster than the modal can close. Keys that reach the
picker after the choice used to land in its list or path box and vanish
(with a second enter crashing the app on a double dismiss), so the first
message after a pick was lost. Now the choice is handed over the moment
enter is pressed (``on_choose``), and every key typed after it is passed on
(``on_typed``) to the chat's input, enter included, in the order typed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from actors.chat.chat_format import describe_model
from actors.chat.models import ModelOption, describe, model_options
from actors.chat.models import exported_models as exported_models  # the picker's old home of it; still imported

KIND_LABELS = {"bundled": "bundled", "exported": "exported", "file": "in the workspace", "server": "server"}


class _ModelList(OptionList):
    """The list of models. Enter is acted on as the key arrives, not when its binding comes back from
    the app: keys typed after it would otherwise overtake the choice (see the module docstring)."""

    async def _on_key(self, event: events.Key) -> None:
        picker = self.screen
        if isinstance(picker, ModelPicker):
            # Here, not where the key would bubble to: a key handled one hop later is overtaken.
            handled = picker.pass_on(event) if picker.chosen is not None else event.key == "enter"
            if event.key == "enter" and picker.chosen is None:
                picker.enter_on_list()
            if handled:
                event.stop()
                event.prevent_default()
                return
        await super()._on_key(event)


class _PathInput(Input):
    """The path box; enter chooses the file as the key arrives, and what is typed after it is the chat's."""

    async def _on_key(self, event: events.Key) -> None:
        picker = self.screen
        if isinstance(picker, ModelPicker) and (picker.chosen is not None or event.key == "enter"):
            event.stop()
            event.prevent_default()
            if picker.chosen is not None:
                picker.pass_on(event)
            else:
                picker.choose_path(self.value)
            return
        await super()._on_key(event)


class ModelPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ModelPicker { align: center middle; }
    ModelPicker > Vertical { width: 96; max-width: 100%; height: auto; max-height: 90%; border: thick $primary;
                             background: $surface; padding: 0 1; }
    ModelPicker #title { text-style: bold; padding: 0 0 1 0; }
    ModelPicker OptionList { height: auto; max-height: 16; }
    ModelPicker #hint { color: $text-muted; padding: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        current: str,
        workspace: Path,
        *,
        exports: list[dict[str, Any]] | None = None,
        run_config: Any = None,
        on_choose: Callable[[str], None] | None = None,
        on_typed: Callable[[str, bool], None] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        """The question asked instead of "Chat model (now: …)" (the side-by-side chat's second model)."""
        self.current = current
        self.workspace = workspace
        self.run_config = run_config
        self.options = model_options(workspace, exports=exports, run_config=run_config)
        self.on_choose = on_choose
        self.on_typed = on_typed
        self.chosen: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            title = self.title_text or f"Chat model (now: {describe_model(self.current)})"
            yield Static(title, id="title", markup=False)
            yield _ModelList(*(Option(self._prompt(o, "…"), id=o.id) for o in self.options), id="models")
            yield Static("…or the path of any GGUF file (enter to use it):", id="hint")
            yield _PathInput(placeholder="/path/to/model.gguf", id="path", compact=True)

    def on_mount(self) -> None:
        self.describe_all()

    @staticmethod
    def _prompt(option: ModelOption, facts: str) -> Content:
        return Content.assemble(
            (option.name, "bold"),
            f"  {KIND_LABELS.get(option.kind, option.kind)} · {facts}",
            (f"\n{option.detail}", "dim"),
        )

    @work(thread=True, exclusive=True, group="describe")
    def describe_all(self) -> None:
        """Size, quantisation and context length of each, read from the file headers off the event loop."""
        for option in self.options:
            facts = describe(option, self.run_config)
            self.app.call_from_thread(self._described, option, facts)

    def _described(self, option: ModelOption, facts: str) -> None:
        if not self.is_attached:
            return
        listing = self.query_one("#models", OptionList)
        index = next((i for i, o in enumerate(self.options) if o.id == option.id), None)
        if index is not None:
            listing.replace_option_prompt_at_index(index, self._prompt(option, facts))

    # --- the choice, and what is typed after it -------------------------------------------

    def choose(self, model: str) -> None:
        """The choice takes effect now, before any key typed after it is handled."""
        if self.chosen is not None:
            return
        self.chosen = model
        if self.on_choose is not None:
            self.on_choose(model)

    def typed(self, text: str, *, submit: bool = False) -> None:
        if self.on_typed is not None:
            self.on_typed(text, submit)

    def pass_on(self, event: events.Key) -> bool:
        """A key typed after the choice goes to the chat's input; True when it was passed on."""
        if event.key == "enter":
            self.typed("", submit=True)
            return True
        if event.is_printable and event.character:
            self.typed(event.character)
            return True
        return False

    def on_key(self, event: events.Key) -> None:
        """Keys the list does not take (letters) bubble here: after the choice they are the chat's."""
        if self.chosen is not None and self.pass_on(event):
            event.stop()

    def enter_on_list(self) -> None:
        """Enter in the list: the highlighted model is chosen (an enter after the choice is `pass_on`'s)."""
        listing = self.query_one("#models", OptionList)
        if listing.highlighted is not None:
            model = listing.get_option_at_index(listing.highlighted).id
            if model:
                self.choose(model)
                self.dismiss(model)

    def choose_path(self, value: str) -> None:
        path = Path(value.strip()).expanduser()
        if not path.is_file():
            self.notify(f"No such file: {path}", severity="error")
            return
        self.choose(str(path.resolve()))
        self.dismiss(str(path.resolve()))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click on a model (enter is handled as it arrives, in `enter_on_list`)."""
        event.stop()
        if self.chosen is None and event.option.id:
            self.choose(event.option.id)
            self.dismiss(event.option.id)

    def dismiss(self, result: Any = None):  # type: ignore[override]
        """Once only: a second dismiss would pop the chat screen itself ("Can't pop screen")."""
        if getattr(self, "_dismissing", False):
            return None
        self._dismissing = True
        return super().dismiss(result)

    def action_cancel(self) -> None:
        if self.chosen is None:
            self.dismiss(None)
