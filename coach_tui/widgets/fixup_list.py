"""Fixups to step through: which run and transcript, which exchange, why, whether the rewrite was checked.

Transcript ids like `t0000` repeat in every run, so the list says which run:
a `run` column when the fixups shown come from more than one run (as k9s
shows a namespace column only across namespaces); with one run, the screen
names it above the list.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from state.models import Fixup

from .transcript_table import short_id

DECISION_STYLE = {
    "pending": "bold yellow",
    "accepted": "green",
    "rejected": "red",
    "unfixable": "dim red",
    "superseded": "dim",
}


def entailment_text(ok: bool | None) -> Text:
    if ok is None:
        return Text("–", style="dim")
    return Text("✓", style="green") if ok else Text("✗", style="bold red")


class FixupList(DataTable):
    DEFAULT_CSS = "FixupList { height: 1fr; }"

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self._columns_for(with_decision=False)

    def _columns_for(self, *, with_decision: bool, with_run: bool = False) -> None:
        """The decision column only when it says something (not when every row is pending); the run likewise."""
        names = ("#",) + (("run",) if with_run else ()) + ("id", "ex", "reason", "ok")
        names += ("decision",) if with_decision else ()
        if tuple(str(c.key.value) for c in self.columns.values()) != names:
            self.clear(columns=True)
            for column in names:
                self.add_column(column, key=column)

    def show(
        self,
        fixups: list[Fixup],
        keep: int | None = None,
        *,
        with_decision: bool = True,
        runs: dict[str, str | None] | None = None,
    ) -> None:
        """Replace the rows; keep the cursor on fixup ``keep`` (or the row where it was).

        ``runs`` maps each transcript to its run; a run column appears when the rows span several runs.
        """
        runs = runs or {}
        index = self.cursor_row
        self.clear()
        with_run = len({runs.get(f.transcript_id) for f in fixups}) > 1
        self._columns_for(with_decision=with_decision, with_run=with_run)
        for f in fixups:
            cells: list = [str(f.id)]
            if with_run:
                cells.append(runs.get(f.transcript_id) or "imported")
            cells += [
                short_id(f.transcript_id),
                str(f.exchange_number),
                f.reason,
                entailment_text(f.entailment_ok),
            ]
            if with_decision:
                cells.append(Text(f.decision, style=DECISION_STYLE.get(f.decision, "")))
            self.add_row(*cells, key=str(f.id))
        if not fixups:
            return
        if keep is not None and str(keep) in self.rows:
            index = self.get_row_index(str(keep))
        self.move_cursor(row=min(max(index, 0), len(fixups) - 1))

    @property
    def selected_key(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
