"""Per-actor worker status: busy or idle, queue depth, calls, tokens, errors.

Live, the counters are the supervisor's; for a run that is not live here
(stopped, finished, or worked on by another process) they are counted from
the run's events in the store, and no actor is shown busy: nothing of this
app is working on it. A resumed run starts from those counts, so they never
go back to zero.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

COLUMNS = ("actor", "state", "busy", "queue", "calls", "tokens in", "tokens out", "errors")
WIDTHS = (9, 9, 7, 5, 7, 11, 11, 6)
"""Fixed widths: cells change in place (`update_cell`), which never widens a column."""


def _state(busy: int, workers: int, errors: int, paused: bool, live: bool = True) -> Text:
    if not live:
        return Text("✗ failed", style="red") if errors else Text("—", style="dim")
    if workers == 0:
        return Text("—", style="dim")
    if paused:
        return Text("⏸ paused", style="yellow")
    if busy:
        return Text("● busy", style="green")
    if errors:
        return Text("✗ failed", style="red")
    return Text("○ idle", style="dim")


class WorkerTable(DataTable):
    DEFAULT_CSS = "WorkerTable { height: auto; max-height: 100%; }"

    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.zebra_stripes = True
        for column, width in zip(COLUMNS, WIDTHS, strict=True):
            self.add_column(column, key=column, width=width)

    def show(self, stats: dict, *, paused: bool = False, live: bool = True) -> None:
        """Redraw from `ActorStats`: the live supervisor's, or (``live`` off) counted from the store."""
        for actor, st in stats.items():
            cells = (
                actor,
                _state(st.busy, st.workers, st.errors, paused, live),
                f"{st.busy}/{st.workers}" if live else "—",
                str(st.queued) if live else "—",
                str(st.calls),
                f"{st.prompt_tokens:,}",
                f"{st.completion_tokens:,}",
                Text(str(st.errors), style="red") if st.errors else "0",
            )
            if actor in self.rows:
                for column, value in zip(COLUMNS[1:], cells[1:], strict=True):
                    self.update_cell(actor, column, value)
            else:
                self.add_row(*cells, key=actor)
