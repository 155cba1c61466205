"""Review: step through proposed fixups and accept or reject each, one key per decision.

For each fixup the screen shows why the reply was flagged (the failing
criterion with the judge's reasoning, or the artifact found), the user
message it answered, the original and the rewrite as a word diff, and the
user's *next* message with the entailment check's verdict — a rewrite must
still be something that next message could have followed.

Decisions go through `actors.usecases.curation.decide`, which commits at once and
applies the pipeline's rule (accept → the rewrite replaces the reply;
reject → cut before that exchange, or reject the transcript when too little
would remain). A transcript with no undecided fixups left goes back to
`assessing`; the app then has it judged again.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static

from actors.usecases import curation
from state.errors import CoachError

from ..run_state import Changes
from ..widgets.app_header import AppHeader
from ..widgets.diff_view import DiffView
from ..widgets.fixup_list import FixupList, entailment_text
from ..widgets.transcript_table import short_id

DECISIONS = curation.DECISION_FILTERS
EMPTY = (
    "No fixups wait for review.\n\nStart a run in [b]review[/b] mode (Monitor → [b]n[/b], Review: review) "
    "and each proposed fixup will wait here for you; in auto mode they are decided by their checks, "
    "and you can still read them by choosing another decision filter above."
)


class ReviewScreen(Screen):
    BINDINGS = [
        Binding("a", "decide(True)", "Accept"),
        Binding("x", "decide(False)", "Reject"),
        Binding("s,j", "step(1)", "Skip"),
        Binding("k", "step(-1)", "Back", show=False),
        Binding("v", "toggle_diff", "Diff view"),
        Binding("c", "focus_filter('criterion')", "Criterion"),
        Binding("d", "focus_filter('decision')", "Decision"),
        Binding("o", "open_transcript", "Open", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield AppHeader("review")
        with Horizontal(id="review-filters"):
            yield Select([], prompt="all criteria", id="criterion", compact=True)
            yield Select([(d, d) for d in DECISIONS], value="pending", allow_blank=False, id="decision", compact=True)
            yield Static("", id="review-count")
        with Horizontal(id="review-body"):
            yield FixupList(id="fixups")
            with VerticalScroll(id="fixup-detail"):
                yield Static(EMPTY, id="fixup-head")
                yield Static("", id="fixup-user")
                yield DiffView(id="fixup-diff")
                yield Static("", id="fixup-next")
        yield Footer()

    def on_mount(self) -> None:
        self._stale = False
        self._shown: int | None = None
        self.app.run_changes.subscribe(self, self.on_run_changes)
        self.reload()
        self.query_one(FixupList).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_run_changes(self, changes: Changes) -> None:
        if changes.fixups and self.is_current:
            self.reload()

    # --- data -----------------------------------------------------------------------------

    def _filters(self) -> tuple[str | None, str]:
        criterion = self.query_one("#criterion", Select).value
        decision = self.query_one("#decision", Select).value
        return (None if criterion in (Select.NULL, None) else str(criterion)), str(decision)

    def reload(self, keep: int | None = None) -> None:
        """Re-read the fixups that match the filters and redraw the list (and the one shown)."""
        store = self.app.store
        criterion, decision = self._filters()
        rows = curation.list_fixups(store, decision=decision, criterion=criterion)
        self._update_criteria()
        table = self.query_one(FixupList)
        table.show(rows, keep=keep if keep is not None else self._shown, with_decision=decision != "pending")
        pending = curation.pending_count(store)
        self.query_one("#review-count", Static).update(
            f"{len(rows)} shown · [b]{pending}[/b] pending" if rows or pending else ""
        )
        self._show(table.selected_id)

    def _update_criteria(self) -> None:
        """The criterion filter offers every rubric criterion and every artifact kind seen so far."""
        select = self.query_one("#criterion", Select)
        reasons = curation.fixup_reasons(self.app.store)
        names = {c.id: c.name for c in self.app.pack.rubric.criteria}
        options = [(f"{r} {names[r]}" if r in names else r, r) for r in reasons]
        if [o[1] for o in options] != getattr(self, "_criteria", None):
            self._criteria = [o[1] for o in options]
            current = select.value
            with select.prevent(Select.Changed):
                select.set_options(options)
                if current in self._criteria:
                    select.value = current

    def _show(self, fixup_id: int | None) -> None:
        self._shown = fixup_id
        head = self.query_one("#fixup-head", Static)
        user = self.query_one("#fixup-user", Static)
        diff = self.query_one(DiffView)
        nxt = self.query_one("#fixup-next", Static)
        if fixup_id is None:
            head.update(EMPTY)
            user.update("")
            nxt.update("")
            diff.display = False
            return
        ctx = curation.fixup_detail(self.app.store, fixup_id)
        f = ctx.fixup
        diff.display = True
        title = Text()
        title.append(f"Fixup {f.id}", style="bold")
        title.append(
            f" · {short_id(f.transcript_id)} exchange {f.exchange_number} · transcript {ctx.transcript_status}"
            f" · {f.decision}" + (f" by {f.decided_by}" if f.decided_by else ""),
            style="dim",
        )
        why = Text()
        if f.reason_kind == "criterion":
            try:
                criterion = self.app.pack.rubric.criterion(f.reason)
                why.append(f"{f.reason} {criterion.name}", style="bold red")
                why.append(f" — {criterion.question}\n", style="dim")
            except KeyError:
                why.append(f"{f.reason}\n", style="bold red")
        else:
            why.append(f"Artifact: {f.reason}\n", style="bold red")
        why.append(f.reasoning or "(no reasoning recorded)")
        head.update(Group(title, why))
        said = Text("User said\n", style="bold cyan")
        said.append(ctx.user_message or "(missing)")
        user.update(said)
        diff.show(f.original, f.proposed)
        nxt_text = Text("Next user message ", style="bold cyan")
        nxt_text.append_text(entailment_text(f.entailment_ok))
        verdict = {True: " still follows the rewrite", False: " does not follow the rewrite", None: " not checked"}[
            f.entailment_ok
        ]
        nxt_text.append(
            verdict + "\n", style="green" if f.entailment_ok else "red" if f.entailment_ok is False else "dim"
        )
        if f.entailment_reasoning:
            nxt_text.append(f"{f.entailment_reasoning}\n", style="italic")
        nxt_text.append(
            ctx.next_user_message
            if ctx.next_user_message is not None
            else "(none: this is the conversation's last exchange)"
        )
        nxt.update(nxt_text)
        self.query_one("#fixup-detail", VerticalScroll).scroll_home(animate=False)

    # --- events ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#fixups")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        fixup_id = int(event.row_key.value)
        if fixup_id != self._shown:
            self._show(fixup_id)

    @on(Select.Changed)
    def _filter_changed(self) -> None:
        self.reload()
        self.query_one(FixupList).focus()

    # --- actions --------------------------------------------------------------------------

    def action_decide(self, accept: bool) -> None:
        fixup_id = self.query_one(FixupList).selected_id
        if fixup_id is None:
            self.notify("Nothing selected.", severity="warning")
            return
        try:
            decision = curation.decide(self.app.store, fixup_id, accept, by="human")
        except CoachError as err:
            self.notify(str(err), severity="error")
            return
        verb = "Accepted" if accept else "Rejected"
        self.notify(f"{verb} fixup {fixup_id}; {short_id(decision.transcript_id)} is now {decision.status}.", timeout=3)
        if decision.judge_again:
            self.app.rejudge(decision.transcript_id)
        table = self.query_one(FixupList)
        row = table.cursor_row
        self.reload()
        if table.row_count:
            table.move_cursor(row=min(row if self._filters()[1] == "pending" else row + 1, table.row_count - 1))
            self._show(table.selected_id)

    def action_step(self, delta: int) -> None:
        table = self.query_one(FixupList)
        if table.row_count:
            table.move_cursor(row=(table.cursor_row + delta) % table.row_count)

    def action_toggle_diff(self) -> None:
        diff = self.query_one(DiffView)
        diff.stacked = not diff.stacked

    def action_focus_filter(self, which: str) -> None:
        select = self.query_one(f"#{which}", Select)
        select.focus()
        select.action_show_overlay()

    def action_open_transcript(self) -> None:
        fixup_id = self.query_one(FixupList).selected_id
        if fixup_id is not None:
            self.app.open_transcript(curation.fixup_detail(self.app.store, fixup_id).fixup.transcript_id)
