"""Eval: the workspace's evaluation runs, and the highlighted one's report — verdict, statistics, safety gate.

Evaluations run in another process — `coach eval base|compare` from a shell,
or a comparison started here as a background job (`c`; `x` stops a job) —
and the screen follows them from the store (`RunFollowingScreen`), looking
for new runs every second while it is visible (`JobHostScreen`). The report
is computed off the event loop with the functions the CLI uses
(`actors.usecases.evaluations`), so a comparison's bootstrap never stalls the
screen. `p` (or enter on a run) opens its conversations pair by pair, base
and candidate side by side with the judge's reasons (`EvalPairsScreen`).
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer

from actors.usecases.evaluations import eval_run_report, eval_runs, run_marker
from actors.usecases.jobs import compare_defaults

from ..widgets.app_header import AppHeader
from ..widgets.eval_report import EvalReport
from ..widgets.eval_runs_table import EvalRunsTable
from ..widgets.jobs_panel import JobsPanel
from .eval_pairs import EvalPairsScreen
from .job_forms import CompareForm
from .job_host import JobHostScreen


class EvalScreen(JobHostScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_command", "Copy command/path"),
        Binding(
            "c",
            "compare_form",
            "Compare…",
            tooltip="compare two models on new personas (a form; runs in the background)",
        ),
        Binding(
            "p", "pairs", "Pairs", tooltip="the run's conversations side by side, with the judge's reasons (also enter)"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._listed: list[tuple[str, str]] | None = None
        """(id, status) of the runs listed at the last reload: what `runs_moved` compares with."""
        self._kinds: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield AppHeader("eval")
        yield EvalRunsTable(id="eval-runs")
        yield JobsPanel(id="eval-jobs")
        yield EvalReport(id="eval-report")
        yield Footer()

    # --- data -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the list of runs and the report of the one highlighted."""
        runs = eval_runs(self.app.store)
        if self._listed is not None and runs and runs[0].id not in dict(self._listed):
            self.selected = runs[0].id  # a run that just appeared (a job's, most likely) is the one to watch
        self._listed = [(r.id, r.status) for r in runs]
        self._kinds = {r.id: r.kind for r in runs}
        table = self.query_one(EvalRunsTable)
        table.display = bool(runs)
        table.show(runs, keep=self.selected)
        if not runs:
            self.selected = None
            self.live = False
            self.query_one(EvalReport).show_hint()
            return
        self.selected = table.selected_key
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

    async def runs_moved(self) -> bool:
        runs = await anyio.to_thread.run_sync(eval_runs, self.app.store)
        return self._listed is not None and [(r.id, r.status) for r in runs] != self._listed

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

    @on(DataTable.RowSelected, "#eval-runs")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.action_pairs()

    def action_pairs(self) -> None:
        if self.selected is None:
            self.notify("No evaluation run to browse.", severity="warning")
            return
        self.app.push_screen(EvalPairsScreen(self.selected, self._kinds.get(self.selected, "compare")))

    def action_compare_form(self) -> None:
        base, candidate = compare_defaults(self.app.store)
        self.open_form(CompareForm(base, candidate, config_path=self.app.config_path))
