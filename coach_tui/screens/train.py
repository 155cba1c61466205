"""Train: the workspace's training runs, and the highlighted one's loss curve, progress, files and next step.

`coach train` runs from the command line, usually in another process, and
records itself in the store (the run row, one `TrainingProgress` event per
logged step; see `actors.training.records`). So the screen reads the store:
when shown, and every two seconds while the run on screen is running, when
it asks first whether that run moved at all (`actors.run_watch`) and redraws
only if it did.
"""

from __future__ import annotations

from typing import ClassVar

import anyio.to_thread
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer

from actors.run_watch import run_marker
from actors.training.snapshot import (
    TrainingSnapshot,
    training_data_ready,
    training_runs,
    training_snapshot,
)

from ..widgets.app_header import AppHeader
from ..widgets.loss_plot import LossPlot
from ..widgets.train_detail import TrainDetail
from ..widgets.train_runs_table import TrainRunsTable

POLL_S = 2.0


class TrainScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("y", "copy_command", "Copy next command"),
    ]

    selected: var[str | None] = var(None)
    """The run shown below the list."""
    live: var[bool] = var(False)
    """The shown run is training: poll the store while this holds and the screen is visible."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self.shown: TrainingSnapshot | None = None
        """The run on screen, for the copy action, the poll and tests."""

    def compose(self) -> ComposeResult:
        yield AppHeader("train")
        yield TrainRunsTable(id="train-runs")
        with VerticalScroll(id="train-body"):
            yield LossPlot(id="loss-plot")
            yield TrainDetail(id="train-detail")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.query_one(TrainRunsTable).focus()
        self.reload()
        self._poll_while(self.live)

    def on_screen_suspend(self) -> None:
        self._poll_while(False)

    def watch_live(self, live: bool) -> None:
        self._poll_while(live and self.is_current)

    def _poll_while(self, on: bool) -> None:
        if on and self._timer is None:
            self._timer = self.set_interval(POLL_S, self._poll)
        elif not on and self._timer is not None:
            self._timer.stop()
            self._timer = None

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
        self.query_one(LossPlot).show(snap.losses)
        detail.show(snap)
        self.live = snap.live

    async def _poll(self) -> None:
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

    def action_refresh(self) -> None:
        self.reload()

    def action_copy_command(self) -> None:
        if self.shown is None:
            self.notify("No training run shown.", severity="warning")
            return
        command = self.shown.next_command
        self.app.copy_to_clipboard(command)
        self.notify(f"Copied: {command}", timeout=4)
