"""Train: the workspace's training runs, and the highlighted one's loss curve, progress, files and next step.

`coach train` runs in another process — started from a shell, or from this
screen as a background job (`s` slice, `t` train, `e` export; `x` stops a
job) — and records itself in the store (the run row, one `TrainingProgress`
event per logged step; see `state.training_records`): the screen follows it
from there (`RunFollowingScreen`). While the screen is visible it also looks
for new runs every second (`JobHostScreen`), so a run a job just created
appears, is selected, and its loss plot grows step by step without a key press.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer

from actors.usecases.jobs import default_preference_pairs, default_training_data, exportable_runs, preset_names
from actors.usecases.training import (
    TrainingSnapshot,
    run_marker,
    training_data_ready,
    training_runs,
    training_snapshot,
)
from state.errors import CoachError

from ..widgets.app_header import AppHeader
from ..widgets.jobs_panel import JobsPanel
from ..widgets.loss_plot import LossPlot
from ..widgets.train_detail import TrainDetail
from ..widgets.train_runs_table import TrainRunsTable
from .job_forms import ExportForm, SliceForm, TrainForm
from .job_host import JobHostScreen


class TrainScreen(JobHostScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_command", "Copy next command"),
        Binding(
            "s",
            "slice_form",
            "Slice…",
            tooltip="slice passed transcripts into training data (a form; runs in the background)",
        ),
        Binding("t", "train_form", "Train…", tooltip="fine-tune on the training data (a form; runs in the background)"),
        Binding(
            "e", "export_form", "Export…", tooltip="export a finished run to GGUF (a form; runs in the background)"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown: TrainingSnapshot | None = None
        """The run on screen, for the copy action, the poll and tests."""
        self._listed: list[tuple[str, str]] | None = None
        """(id, status) of the runs listed at the last reload: what `runs_moved` compares with."""

    def compose(self) -> ComposeResult:
        yield AppHeader("train")
        yield TrainRunsTable(id="train-runs")
        yield JobsPanel(id="train-jobs")
        with VerticalScroll(id="train-body"):
            yield LossPlot(id="loss-plot")
            yield TrainDetail(id="train-detail")
        yield Footer()

    # --- data -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the list of runs and the one highlighted."""
        store = self.app.store
        runs = training_runs(store)
        listed = [(r.id, r.status) for r in runs]
        if self._listed is not None and runs and runs[0].id not in dict(self._listed):
            self.selected = runs[0].id  # a run that just appeared (a job's, most likely) is the one to watch
        self._listed = listed
        table = self.query_one(TrainRunsTable)
        table.display = bool(runs)
        self.query_one(LossPlot).display = bool(runs)
        table.show(runs, keep=self.selected)
        if not runs:
            self.selected, self.shown, self.live = None, None, False
            self.query_one(TrainDetail).show_empty(*training_data_ready(store))
            return
        self.selected = table.selected_key
        self.load_run(self.selected)

    @work(exclusive=True, group="train-run", exit_on_error=False)
    async def load_run(self, run_id: str) -> None:
        detail = self.query_one(TrainDetail)
        try:
            snap = await anyio.to_thread.run_sync(training_snapshot, self.app.store, run_id)
        except Exception as err:  # noqa: BLE001 - odd data in one run must not take the screen down
            snap, problem = None, f"Could not read this run: {type(err).__name__}: {err}"
        else:
            problem = "This training run is no longer in the workspace (r refreshes the list)."
        if run_id != self.selected:
            return
        self.shown = snap
        if snap is None:
            self.live = False
            self.query_one(LossPlot).show([])
            detail.show_problem(run_id, problem)
            return
        self.query_one(LossPlot).show(snap.losses, snap.val_losses)
        detail.show(snap)
        self.live = snap.live

    async def poll(self) -> None:
        """Every POLL_S while a training run is shown: redraw only when the store says it moved."""
        shown = self.shown
        if not self.is_current or shown is None or shown.info.id != self.selected:
            return
        if await anyio.to_thread.run_sync(run_marker, self.app.store, shown.info.id) != shown.marker:
            self.reload()

    async def runs_moved(self) -> bool:
        runs = await anyio.to_thread.run_sync(training_runs, self.app.store)
        return self._listed is not None and [(r.id, r.status) for r in runs] != self._listed

    # --- events and actions ---------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#train-runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self.selected:
            self.selected = event.row_key.value
            self.load_run(self.selected)

    def action_copy_command(self) -> None:
        if self.shown is None:
            self.notify("No training run shown.", severity="warning")
            return
        command = self.shown.next_command
        self.app.copy_to_clipboard(command)
        self.notify(f"Copied: {command}", timeout=4)

    def action_slice_form(self) -> None:
        passed, _examples = training_data_ready(self.app.store)
        workspace = self.app.context.workspace
        self.open_form(
            SliceForm(default_training_data(workspace), passed, pairs_hint=default_preference_pairs(workspace))
        )

    def action_train_form(self) -> None:
        try:
            presets = preset_names()
        except CoachError as err:
            self.notify(str(err), severity="error")
            return
        workspace = self.app.context.workspace
        self.open_form(TrainForm(default_training_data(workspace), presets, pairs=default_preference_pairs(workspace)))

    def action_export_form(self) -> None:
        runs = exportable_runs(self.app.store)
        if not runs:
            self.notify("No finished training run to export yet (t trains one).", severity="warning")
            return
        self.open_form(ExportForm(runs, self.selected))
