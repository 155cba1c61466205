"""Runs already in the workspace, newest first; pick one to view or resume it.

A run the store calls `running` is shown as what it is: running here, running
in another process (its lease is held), or interrupted (nobody holds it: its
process was killed), so History never calls a dead run running.
"""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from actors.usecases.runs import owner_of
from state.run_index import recent_runs
from state.store import Store

from .keyed_table import KeyedTable

STATUS_STYLE = {
    "running": "green",
    "running elsewhere": "cyan",
    "interrupted": "yellow",
    "finished": "bold",
    "stopped": "yellow",
    "failed": "red",
}


def shown_status(store: Store, run_id: str, status: str, live_here: str | None) -> str:
    """The status a person should read: `running` only when someone really works on the run."""
    if status != "running" or run_id == live_here:
        return status
    return "running elsewhere" if owner_of(store, run_id) is not None else "interrupted"


class RunsTable(KeyedTable):
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

    def load(self, store: Store, live_here: str | None = None) -> None:
        """Redraw the list; ``live_here`` is the run this app works on now, if any."""
        self.clear()
        for run in recent_runs(store, "generate", limit=200):
            status = shown_status(store, run.id, run.status, live_here)
            summary = run.config.get("summary", {}) if isinstance(run.config, dict) else {}
            counts = summary.get("counts") or {}
            text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            planned = run.config.get("transcripts", "") if isinstance(run.config, dict) else ""
            self.add_row(
                run.id,
                Text(status, style=STATUS_STYLE.get(status, "")),
                run.created_at.strftime("%Y-%m-%d %H:%M"),
                str(planned),
                text,
                key=run.id,
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Chosen(event.row_key.value))
