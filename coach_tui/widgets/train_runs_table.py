"""Training runs in the workspace, newest first: how far each got and its last loss."""

from __future__ import annotations

from textual.widgets import DataTable

from actors.training.snapshot import TrainRunInfo

from .eval_runs_table import status_text


def steps_text(step: int | None, max_steps: int | None) -> str:
    return f"{'–' if step is None else step}/{'?' if max_steps is None else max_steps}"


class TrainRunsTable(DataTable):
    DEFAULT_CSS = "TrainRunsTable { height: auto; max-height: 8; }"

    def on_mount(self) -> None:
        self._shown: list[TrainRunInfo] | None = None
        self.cursor_type = "row"
        for column in ("run", "status", "preset", "steps", "last loss", "created"):
            self.add_column(column, key=column)

    def show(self, runs: list[TrainRunInfo], keep: str | None = None) -> None:
        """Replace the rows (unless nothing changed); keep the cursor on run ``keep`` when it is still listed."""
        if runs == self._shown:
            return
        self._shown = list(runs)
        self.clear()
        for run in runs:
            loss = "–" if run.last_loss is None else f"{run.last_loss:.4f}"
            self.add_row(run.id, status_text(run.status), run.preset, steps_text(run.step, run.max_steps), loss,
                         run.created_at.strftime("%Y-%m-%d %H:%M"), key=run.id)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
