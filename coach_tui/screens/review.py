"""Review: step through proposed fixups and accept or reject each, one key per decision.

For each fixup the screen shows why the reply was flagged (the failing
criterion with the judge's reasoning, or the artifact found), the user
message it answered, the original and the rewrite as a word diff, and the
user's *next* message with the entailment check's verdict — a rewrite must
still be something that next message could have followed.

Decisions go through `actors.usecases.curation.decide`, which commits at once and
applies the pipeline's rule (accept → the rewrite replaces the reply;
reject → cut before that exchange, or reject the transcript when too little
would remain). Rejecting first says which of the two it will be, with the
run's own minimum, and asks. A transcript with no undecided fixups left goes
back to `assessing`; the app has it judged again when the person leaves
Review, so that until then `u` can take a decision back (in the store too).
Once a transcript was judged again the decision stands, and `u` says so.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static

from actors.usecases import curation
from state.errors import CoachError

from ..run_state import Changes
from ..widgets.app_header import AppHeader
from ..widgets.diff_view import DiffView
from ..widgets.fixup_list import FixupList, entailment_text
from ..widgets.transcript_table import short_id
from .confirm import Confirm

DECISIONS = curation.DECISION_FILTERS
EMPTY = (
    "No fixups wait for review.\n\nStart a run in [b]review[/b] mode (Monitor → [b]n[/b], Review: review) "
    "and each proposed fixup will wait here for you; in auto mode they are decided by their checks, "
    "and you can still read them by choosing another decision filter above."
)


class ReviewScreen(Screen):
    BINDINGS = [
        Binding("a", "decide(True)", "Accept", tooltip="Accept: the rewrite replaces the reply"),
        Binding(
            "x",
            "decide(False)",
            "Reject…",
            tooltip="Reject: says first whether the transcript is cut or rejected whole, and asks",
        ),
        Binding(
            "u",
            "undo",
            "Undo",
            tooltip="Undo the selected decision (else the last one) until the transcript is judged again",
        ),
        Binding("s,j", "step(1)", "Skip", tooltip="Next fixup"),
        Binding("k", "step(-1)", "Back", show=False, tooltip="Previous fixup"),
        Binding("v", "toggle_diff", "Diff view", tooltip="Inline or stacked diff"),
        Binding("c", "focus_filter('criterion')", "Criterion", tooltip="Filter by criterion"),
        Binding("d", "focus_filter('decision')", "Decision", tooltip="Filter by decision (pending, accepted, …)"),
        Binding("o", "open_transcript", "Open", show=False, tooltip="Open the transcript in the Monitor"),
    ]

    def compose(self) -> ComposeResult:
        yield AppHeader("review")
        with Horizontal(id="review-filters"):
            yield Select([], prompt="all criteria", id="criterion", compact=True)
            yield Select([(d, d) for d in DECISIONS], value="pending", allow_blank=False, id="decision", compact=True)
            yield Static("", id="review-count")
        with Horizontal(id="review-body"):
            with Vertical(id="fixups-pane"):
                yield Static("", id="fixups-run")
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
        self._runs: dict[str, str | None] = {}
        """Each transcript's run, read once: it never changes."""
        self._decided: list[int] = []
        """Fixups decided here, newest last: `u` takes back the newest."""
        self._to_judge: set[str] = set()
        """Transcripts to judge again when the person leaves Review (until then a decision can be undone)."""
        self.app.run_changes.subscribe(self, self.on_run_changes)
        self.reload()
        self.query_one(FixupList).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_screen_suspend(self) -> None:
        """Leaving Review (not a dialog over it): the run moves on; the decided transcripts are judged again."""
        if self.app.current_mode == "review":
            return
        for transcript_id in sorted(self._to_judge):
            self.app.rejudge(transcript_id)
        self._to_judge.clear()
        self._decided.clear()

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
        unknown = {f.transcript_id for f in rows} - self._runs.keys()
        if unknown:
            self._runs.update(curation.transcript_runs(store, unknown))
        runs = {self._runs[f.transcript_id] for f in rows}
        self.query_one("#fixups-run", Static).update(
            "" if not runs else f"run {next(iter(runs)) or '(imported)'}" if len(runs) == 1 else f"{len(runs)} runs"
        )
        table = self.query_one(FixupList)
        table.show(
            rows,
            keep=keep if keep is not None else self._shown,
            with_decision=decision != "pending",
            runs=self._runs,
        )
        pending = curation.pending_count(store)
        self.query_one("#review-count", Static).update(
            f"{len(rows)} shown · [b]{pending}[/b] pending" if rows or pending else ""
        )
        self._show(table.selected_key)

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
        run_id = self._run_of(f.transcript_id)
        title.append(
            f" · {run_id or 'imported'} · {short_id(f.transcript_id)} exchange {f.exchange_number}"
            f" · transcript {ctx.transcript_status}"
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

    def _run_of(self, transcript_id: str) -> str | None:
        if transcript_id not in self._runs:
            self._runs.update(curation.transcript_runs(self.app.store, [transcript_id]))
        return self._runs[transcript_id]

    def _label(self, transcript_id: str) -> str:
        """`run-42-ab12cd t0003`: a transcript named with its run, as ids repeat across runs."""
        run_id = self._run_of(transcript_id)
        return f"{run_id} {short_id(transcript_id)}" if run_id else transcript_id

    def action_decide(self, accept: bool) -> None:
        fixup_id = self.query_one(FixupList).selected_key
        if fixup_id is None:
            self.notify("Nothing selected.", severity="warning")
            return
        if accept:
            self._decide(fixup_id, True)
            return
        try:
            preview = curation.rejection_preview(self.app.store, fixup_id)
        except CoachError as err:
            self.notify(str(err), severity="error")
            return
        whole = preview.rejects_transcript
        question = Text()
        question.append(f"Reject the rewrite of exchange {preview.exchange_number} of ")
        question.append(self._label(preview.transcript_id), style="bold")
        question.append("?\n\n")
        question.append(preview.sentence(), style="bold red" if whole else "")
        if whole:
            question.append("\n\nRuns with short lengths want a lower Min exchanges (new-run form).", style="dim")

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(fixup_id, False)

        self.app.push_screen(
            Confirm(
                question,
                title="Reject the whole transcript?" if whole else f"Cut at exchange {preview.exchange_number}?",
                yes="Reject transcript" if whole else "Cut",
                variant="error" if whole else "warning",
            ),
            answered,
        )

    def _decide(self, fixup_id: int, accept: bool) -> None:
        try:
            decision = curation.decide(self.app.store, fixup_id, accept, by="human")
        except CoachError as err:
            self.notify(str(err), severity="error")
            return
        self._decided.append(fixup_id)
        if decision.judge_again:
            self._to_judge.add(decision.transcript_id)
        verb = "Accepted" if accept else "Rejected"
        after = " (judged again when you leave Review)" if decision.judge_again else ""
        self.notify(
            f"{verb} fixup {fixup_id}; {self._label(decision.transcript_id)} is now {decision.status}{after}. "
            "u undoes.",
            timeout=4,
        )
        table = self.query_one(FixupList)
        row = table.cursor_row
        self.reload()
        if table.row_count:
            table.move_cursor(row=min(row if self._filters()[1] == "pending" else row + 1, table.row_count - 1))
            self._show(table.selected_key)

    def action_undo(self) -> None:
        """Take back the selected decision when one is shown, else the newest made here."""
        table = self.query_one(FixupList)
        selected = table.selected_key
        if selected is not None and curation.fixup_detail(self.app.store, selected).fixup.decision != "pending":
            fixup_id = selected
        elif self._decided:
            fixup_id = self._decided[-1]
        else:
            self.notify("No decision to undo here: choose a decided fixup with the decision filter (d).", timeout=4)
            return
        transcript_id = curation.fixup_detail(self.app.store, fixup_id).fixup.transcript_id
        busy = self._busy(transcript_id)
        if busy:
            self.notify(f"Cannot undo fixup {fixup_id}: {busy}", severity="warning", timeout=6)
            return
        try:
            decision = curation.undo(self.app.store, fixup_id)
        except CoachError as err:
            self.notify(f"Cannot undo: {err}", severity="warning", timeout=6)
            return
        if fixup_id in self._decided:
            self._decided.remove(fixup_id)
        self._to_judge.discard(transcript_id)  # back in review: judged again once its fixups are decided
        self.notify(
            f"Undone: fixup {fixup_id} waits again; {self._label(transcript_id)} is {decision.status}.", timeout=4
        )
        self.reload(keep=fixup_id)

    def _busy(self, transcript_id: str) -> str | None:
        """Why the transcript may be judged right now (so its decision can no longer be taken back).

        A live run of this app leaves a reviewed transcript alone (it planned its work when it
        started); only a judging-again pass takes it up. A run in another process may take it up
        at any time.
        """
        if transcript_id in self.app.judging:
            return f"{self._label(transcript_id)} is being judged again now: the run has moved on."
        run_id = self._run_of(transcript_id)
        owner = self.app.controller.owner_elsewhere(run_id) if run_id is not None else None
        if owner is not None:
            return f"run {run_id} is running in another process ({owner}), which may judge it at any moment."
        return None

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
        fixup_id = self.query_one(FixupList).selected_key
        if fixup_id is not None:
            self.app.open_transcript(curation.fixup_detail(self.app.store, fixup_id).fixup.transcript_id)
