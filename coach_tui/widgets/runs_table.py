"""Runs already in the workspace, newest first; pick one to view or resume it."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from state.run_index import recent_runs
from state.store import Store

STATUS_STYLE = {"running": "green", "finished": "bold", "stopped": "yellow", "failed": "red"}


class RunsTable(DataTable):
    DEFAULT_CSS = "RunsTable { height: 1fr; }"

    class Chosen(Message):
        """A run was picked (enter) to be viewed in the monitor."""

        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for column in ("run", "status", "created", "transcripts", "summary"):
            self.add_column(column, key=column)

    def load(self, store: Store) -> None:
        self.clear()
        for run in recent_runs(store, "generate", limit=200):
            summary = run.config.get("summary", {}) if isinstance(run.config, dict) else {}
            counts = summary.get("counts") or {}
            text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            planned = run.config.get("transcripts", "") if isinstance(run.config, dict) else ""
            self.add_row(
                run.id,
                Text(run.status, style=STATUS_STYLE.get(run.status, "")),
                run.created_at.strftime("%Y-%m-%d %H:%M"),
                str(planned),
                text,
                key=run.id,
            )

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Chosen(event.row_key.value))
