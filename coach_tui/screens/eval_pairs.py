"""One evaluation run's conversations, pair by pair: base and candidate side by side, and the judge's reasons.

Pushed from the Eval screen (`p`, or enter on a run); `escape` goes back.
Reads go through `actors.usecases.eval_pairs` off the event loop. While the
evaluation is still running the list is refreshed when the store says the
run moved, so new conversations and verdicts appear as they are written.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from actors.usecases.eval_pairs import EvalPair, eval_pairs, pair_detail
from actors.usecases.evaluations import run_marker

from ..widgets.app_header import AppHeader
from ..widgets.pair_browser import PairsTable, PairView

POLL_S = 2.0


class EvalPairsScreen(Screen):
    DEFAULT_CSS = """
    EvalPairsScreen #pairs-title { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    EvalPairsScreen PairsTable { border-bottom: hkey $foreground 20%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("t", "toggle_tab", "Conversation/Judge"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, run_id: str, kind: str = "compare") -> None:
        super().__init__()
        self.run_id = run_id
        self.pairs: list[EvalPair] = []
        self.roles: tuple[str, ...] = ("base", "candidate") if kind == "compare" else ("model",)
        self.shown: tuple[EvalPair, tuple] | None = None
        """The pair on screen and its details, for tests."""
        self._marker = None
        self._live = False

    def compose(self) -> ComposeResult:
        yield AppHeader("eval")
        yield Static(f"Evaluation {self.run_id}: reading…", id="pairs-title")
        yield PairsTable(self.roles, id="pairs-table")
        yield PairView(id="pair-view")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PairsTable).focus()
        self.load()
        self.set_interval(POLL_S, self._poll)

    @work(exclusive=True, group="eval-pairs", exit_on_error=False)
    async def load(self) -> None:
        store = self.app.store
        marker = await anyio.to_thread.run_sync(run_marker, store, self.run_id)
        found = await anyio.to_thread.run_sync(eval_pairs, store, self.run_id)
        title = self.query_one("#pairs-title", Static)
        if found is None:
            title.update(f"Evaluation {self.run_id} is no longer in the workspace.")
            return
        info, pairs = found
        self._marker, self._live = marker, info.status == "running"
        self.pairs = pairs
        models = " vs ".join(m.rsplit("/", 1)[-1] for m in info.models) or "?"
        title.update(
            f"[b]{info.id}[/b] · {info.kind} · {models} · {len(pairs)} pair(s) · {info.status}"
            + ("  (updates as it runs)" if self._live else "")
        )
        self.query_one(PairsTable).show(pairs)
        if not pairs:
            self.query_one(PairView).show_message("No conversations in this evaluation yet.")
            return
        self.show_pair(self.query_one(PairsTable).selected_key)

    @work(exclusive=True, group="eval-pair", exit_on_error=False)
    async def show_pair(self, key: str | None) -> None:
        pair = next((p for p in self.pairs if p.key == key), None)
        if pair is None:
            return
        details = await anyio.to_thread.run_sync(pair_detail, self.app.store, pair)
        if self.query_one(PairsTable).selected_key != key:
            return
        rubric = self.app.pack.rubric
        names = {c.id: c.name for c in rubric.criteria}
        self.query_one(PairView).show(pair, details, self.roles, names, tuple(rubric.safety_gates))
        self.shown = (pair, details)

    async def _poll(self) -> None:
        if not self._live or not self.is_current:
            return
        if await anyio.to_thread.run_sync(run_marker, self.app.store, self.run_id) != self._marker:
            self.load()

    @on(DataTable.RowHighlighted, "#pairs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_pair(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_tab(self) -> None:
        self.query_one(PairView).toggle()

    def action_refresh(self) -> None:
        self.load()
