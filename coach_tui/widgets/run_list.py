"""A list of runs, newest first, that keeps its cursor on the run being looked at when it refreshes.

The Train and Eval screens list their runs the same way and differ only in
their columns: each subclass names its columns and how one run fills them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text

from .keyed_table import KeyedTable

RUN_STATUS_STYLE = {
    "running": "green",
    "finished": "bold",
    "stopped": "yellow",
    "interrupted": "yellow",
    "failed": "red",
}


def run_status_text(status: str) -> Text:
    return Text(status, style=RUN_STATUS_STYLE.get(status, ""))


class RunList(KeyedTable):
    DEFAULT_CSS = "RunList { height: auto; max-height: 8; }"
    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def on_mount(self) -> None:
        self._shown: list | None = None
        self.cursor_type = "row"
        for column in self.COLUMNS:
            self.add_column(column, key=column)

    def cells(self, run: Any) -> tuple:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def show(self, runs: list, keep: str | None = None) -> None:
        """Replace the rows (unless nothing changed); keep the cursor on run ``keep`` when it is still listed."""
        if runs == self._shown:
            return
        self._shown = list(runs)
        self.clear()
        for run in runs:
            self.add_row(*self.cells(run), key=run.id)
        self.keep_cursor_on(keep)
