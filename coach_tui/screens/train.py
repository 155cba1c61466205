"""Train: the workspace's training runs, and the highlighted one's loss curve, progress, files and next step.

`coach train` runs from the command line, usually in another process, and
records itself in the store (the run row, one `TrainingProgress` event per
logged step; see `state.training_records`): the screen follows it from
there (`RunFollowingScreen`).
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer

from actors.usecases.training import (
    TrainingSnapshot,
    run_marker,
    training_data_ready,
    training_runs,
    training_snapshot,
)

from ..widgets.app_header import AppHeader
from ..widgets.loss_plot import LossPlot
from ..widgets.train_detail import TrainDetail
from ..widgets.train_runs_table import TrainRunsTable
from .run_following import RunFollowingScreen


class TrainScreen(RunFollowingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_command", "Copy next command"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown: TrainingSnapshot | None = None
        """The run on screen, for the copy action, the poll and tests."""

    def compose(self) -> ComposeResult:
        yield AppHeader("train")
        yield TrainRunsTable(id="train-runs")
        with VerticalScroll(id="train-body"):
            yield LossPlot(id="loss-plot")
            yield TrainDetail(id="train-detail")
        yield Footer()

    # --- data -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the list of runs and the one highlighted."""
        store = self.app.store
        runs = training_runs(store)
        table = self.query_one(TrainRunsTable)
        table.display = bool(runs)
        self.query_one(LossPlot).display = bool(runs)
        table.show(runs, keep=self.selected)
        if not runs:
            self.selected, self.shown, self.live = None, None, False
            self.query_one(TrainDetail).show_empty(*training_data_ready(store))
            return
        self.selected = table.selected_id
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
