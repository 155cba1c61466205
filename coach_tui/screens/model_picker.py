"""Choose the chat model: a bundled one, a GGUF the trainer exported, or any path."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from actors.backends.bundled import BUNDLED


def exported_models(workspace: Path, limit: int = 20) -> list[Path]:
    """GGUF files under the workspace (where training exports land), newest first, a few levels deep."""
    found: list[Path] = []
    for pattern in ("*.gguf", "*/*.gguf", "*/*/*.gguf", "*/*/*/*.gguf"):
        try:
            found.extend(p for p in workspace.glob(pattern) if p.is_file())
        except OSError:
            continue
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


class ModelPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ModelPicker { align: center middle; }
    ModelPicker > Vertical { width: 76; max-width: 100%; height: auto; max-height: 90%; border: thick $primary;
                             background: $surface; padding: 0 1; }
    ModelPicker #title { text-style: bold; padding: 0 0 1 0; }
    ModelPicker OptionList { height: auto; max-height: 12; }
    ModelPicker #hint { color: $text-muted; padding: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str, workspace: Path) -> None:
        super().__init__()
        self.current = current
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        options = [Option(f"{m.name} — {m.description}", id=m.name) for m in BUNDLED.values()]
        for path in exported_models(self.workspace):
            options.append(Option(f"{path.name} — {path.parent}", id=str(path)))
        with Vertical():
            yield Static(f"Chat model (now: {self.current})", id="title")
            yield OptionList(*options, id="models")
            yield Static("…or the path of any GGUF file (enter to use it):", id="hint")
            yield Input(placeholder="/path/to/model.gguf", id="path", compact=True)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not path.is_file():
            self.notify(f"No such file: {path}", severity="error")
            return
        self.dismiss(str(path.resolve()))

    def action_cancel(self) -> None:
        self.dismiss(None)
