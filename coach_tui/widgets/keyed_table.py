"""A table whose rows are keyed by what they show, and whose cursor stays on that row across refreshes.

Why: the screens that follow the store redraw their tables every second or
so; a person who moved the cursor to a row must find it there after the
refresh, not back on the first one.
"""

from __future__ import annotations

from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist


class KeyedTable(DataTable):
    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor; None on an empty table."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:  # a table shrinking under the cursor has no row there for a moment
            return None

    def keep_cursor_on(self, key: str | None) -> None:
        """Put the cursor back on the row `key` after a refresh, when it is still there."""
        if key is not None and key in self.rows:
            self.move_cursor(row=self.get_row_index(key), scroll=False)
