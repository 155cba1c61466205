"""The Textual app. For now a home screen showing the workspace and the domain pack.

The live monitor, review and chat screens arrive with the TUI issue; this
screen already reads the same store and pack the headless commands use.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from actors.pack.loader import DomainPack
from state.models import Assessment, Exchange, Transcript

from .context import AppContext


class HomeScreenText(Static):
    """A summary of what the workspace holds and which pack is active."""


class CoachApp(App):
    TITLE = "coach"
    CSS = """
    Screen { align: center top; }
    #summary { width: 100%; max-width: 100; padding: 1 2; }
    """
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, context: AppContext, pack: DomainPack):
        super().__init__()
        self.context = context
        self.pack = pack

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with VerticalScroll():
            yield HomeScreenText(self._summary(), id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"workspace {self.context.workspace}"

    def _summary(self) -> str:
        store = self.context.store
        rubric = self.pack.rubric
        return "\n".join(
            [
                f"[b]Domain pack[/b]  {self.pack.name} — {self.pack.manifest.description}",
                f"  {len(self.pack.input_taxonomy.topics)} topics · "
                f"{sum(len(f.patterns) for f in self.pack.flaw_taxonomy.families)} flaw patterns · "
                f"{len(rubric.criteria)} criteria · pass threshold {rubric.pass_threshold:.2f} · "
                f"safety gates {', '.join(rubric.safety_gates)}",
                "",
                f"[b]Workspace[/b]  {self.context.workspace}",
                f"  {store.count(Transcript)} transcripts · {store.count(Exchange)} exchanges · "
                f"{store.count(Assessment)} assessments",
                "",
                "Headless commands: coach config check · coach rubric score · coach import · coach export",
                "Run [b]coach --help[/b] for the full list.",
            ]
        )


def run_app(context: AppContext) -> None:
    pack = context.pack()  # a broken pack is reported before the screen opens
    CoachApp(context, pack).run()
