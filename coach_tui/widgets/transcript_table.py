"""The run's transcripts, one row each: status, exchanges so far, score (or, while judged, criteria judged).

Only rows that changed are touched on a refresh (`update_cell`), so a run of
hundreds of transcripts redraws in constant time per burst.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message

from state.status import TranscriptStatus as S

from ..run_state import RunState, TranscriptRow
from .keyed_table import KeyedTable

STATUS_STYLE = {
    S.PLANNED: "dim",
    S.GENERATING: "cyan",
    S.CURATING: "cyan",
    S.ASSESSING: "magenta",
    S.FIXING: "yellow",
    S.REVIEW: "bold yellow",
    S.PASSED: "green",
    S.REJECTED: "red",
    S.FAILED: "bold red",
    S.IMPORTED: "dim",
}
COLUMNS = ("id", "status", "exch", "score")
WIDTHS = {"id": 5, "status": 10, "exch": 7, "score": 5}
"""Fixed widths: cells change in place (`update_cell`), which never widens a column."""


def short_id(transcript_id: str) -> str:
    """`run-42-ab12cd-t0003` → `t0003`: the run is in the header already."""
    return transcript_id.rsplit("-", 1)[-1]


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def judging_text(judged: int, total: int | None, width: int = WIDTHS["score"]) -> str:
    """Judge calls answered so far, `34/51`; as a percentage when that does not fit the column.

    Without a total (queued for the assessor, or a judging followed from the store) only a count, if any.
    """
    if total is None:
        return str(judged) if judged else ""
    text = f"{judged}/{total}"
    return text if len(text) <= width else f"{judged * 100 // max(total, 1)}%"


def _cells(row: TranscriptRow) -> tuple:
    if row.status == S.ASSESSING and row.judged is not None:  # being judged: how far (the score is the last one)
        score = Text(judging_text(row.judged, row.judge_total), style="magenta")
    elif row.score is None:
        score = ""
    else:
        score = Text(f"{row.score:.2f}", style="green" if row.passed else "red")
    return (short_id(row.id), status_text(row.status), f"{row.exchanges}/{row.target}", score)


class TranscriptTable(KeyedTable):
    DEFAULT_CSS = "TranscriptTable { height: 1fr; }"

    class UserMoved(Message):
        """The person moved the cursor (not a redraw or the follow mode)."""

    def _moved(self) -> None:
        self.post_message(self.UserMoved())

    def action_cursor_up(self) -> None:
        self._moved()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._moved()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._moved()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._moved()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._moved()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._moved()
        super().action_scroll_bottom()

    async def _on_click(self, event: events.Click) -> None:
        self._moved()
        await super()._on_click(event)

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for column in COLUMNS:
            self.add_column(column, key=column, width=WIDTHS[column])

    def show_all(self, state: RunState) -> None:
        """Replace every row (a different run, or catching up after being hidden)."""
        selected = self.selected_key
        self.clear()
        for tid in sorted(state.rows):
            self.add_row(*_cells(state.rows[tid]), key=tid)
        self.keep_cursor_on(selected)

    def show_rows(self, state: RunState, ids: set[str]) -> None:
        for tid in ids:
            row = state.rows.get(tid)
            if row is None:
                continue
            if tid not in self.rows:
                self.show_all(state)
                return
            for column, value in zip(COLUMNS[1:], _cells(row)[1:], strict=True):
                self.update_cell(tid, column, value)

    def select(self, transcript_id: str) -> None:
        if transcript_id in self.rows:
            self.move_cursor(row=self.get_row_index(transcript_id))
