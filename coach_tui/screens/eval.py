"""Eval: the workspace's evaluation runs, and the highlighted one's report — verdict, statistics, safety gate.

Evaluations run from the command line (`coach eval base`, `coach eval
compare`), often in another process: the screen follows them from the store
(`RunFollowingScreen`). The report is computed off the event loop with the
functions the CLI uses (`actors.usecases.evaluations`), so a comparison's
bootstrap never stalls the screen.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer

from actors.usecases.evaluations import eval_run_report, eval_runs, run_marker

from ..widgets.app_header import AppHeader
from ..widgets.eval_report import EvalReport
from ..widgets.eval_runs_table import EvalRunsTable
from .run_following import RunFollowingScreen


class EvalScreen(RunFollowingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_command", "Copy command/path"),
    ]

    def compose(self) -> ComposeResult:
        yield AppHeader("eval")
        yield EvalRunsTable(id="eval-runs")
        yield EvalReport(id="eval-report")
        yield Footer()

    # --- data -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the list of runs and the report of the one highlighted."""
        runs = eval_runs(self.app.store)
        table = self.query_one(EvalRunsTable)
        table.display = bool(runs)
        table.show(runs, keep=self.selected)
        if not runs:
            self.selected = None
            self.live = False
            self.query_one(EvalReport).show_hint()
            return
        self.selected = table.selected_id
        self.load_report(self.selected)

    @work(exclusive=True, group="eval-report", exit_on_error=False)
    async def load_report(self, run_id: str) -> None:
        report = self.query_one(EvalReport)
        store, workspace = self.app.store, self.app.context.workspace
        try:
            found = await anyio.to_thread.run_sync(eval_run_report, store, run_id, workspace, self.app.pack)
        except Exception as err:  # noqa: BLE001 - odd data in one run must not take the screen down
            if run_id == self.selected:
                self.live = False
                report.show_problem(run_id, f"Could not compute this run's report: {type(err).__name__}: {err}")
            return
        if run_id != self.selected:
            return
        if found is None:
            self.live = False
            report.show_problem(run_id, "This evaluation run is no longer in the workspace (r refreshes the list).")
            return
        report.show(found, {c.id: c.name for c in self.app.pack.rubric.criteria})
        self.live = found.live

    async def poll(self) -> None:
        """Every POLL_S while a live run is shown: redraw only when the store says it moved."""
        shown = self.query_one(EvalReport).shown
        if not self.is_current or shown is None or shown.info.id != self.selected:
            return
        if await anyio.to_thread.run_sync(run_marker, self.app.store, shown.info.id) != shown.marker:
            self.reload()

    # --- events and actions ---------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#eval-runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self.selected:
            self.selected = event.row_key.value
            self.load_report(self.selected)

    def action_copy_command(self) -> None:
        shown = self.query_one(EvalReport).shown
        if shown is None:
            self.notify("No evaluation run shown.", severity="warning")
            return
        text = shown.info.resume_command if shown.unfinished or shown.written is None else str(shown.written)
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied: {text}", timeout=4)
