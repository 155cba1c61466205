"""Evaluation runs in the workspace, newest first; the highlighted one is the report shown below."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from actors.eval_reports import EvalRunInfo

STATUS_STYLE = {"running": "green", "finished": "bold", "stopped": "yellow", "interrupted": "yellow", "failed": "red"}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class EvalRunsTable(DataTable):
    DEFAULT_CSS = "EvalRunsTable { height: auto; max-height: 8; }"

    def on_mount(self) -> None:
        self._shown: list[EvalRunInfo] | None = None
        self.cursor_type = "row"
        for column in ("run", "status", "kind", "models", "p×r×ex", "created"):
            self.add_column(column, key=column)

    def show(self, runs: list[EvalRunInfo], keep: str | None = None) -> None:
        """Replace the rows (unless nothing changed); keep the cursor on run ``keep`` when it is still listed."""
        if runs == self._shown:
            return
        self._shown = list(runs)
        self.clear()
        for run in runs:
            models = " vs ".join(m.rsplit("/", 1)[-1] for m in run.models) or "?"  # a GGUF by its file name
            self.add_row(run.id, status_text(run.status), run.kind, models, run.size,
                         run.created_at.strftime("%Y-%m-%d %H:%M"), key=run.id)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), scroll=False)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
