"""The review screen with Textual's pilot: step through pending fixups, accept and reject them,
and see the store change at once (and the pipeline act on it)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Select

from coach_tui.run_control import RunController, RunRequest, settings_for
from coach_tui.screens.review import ReviewScreen
from coach_tui.widgets.diff_view import change_ratio, stacked_diff, word_diff
from state import pipeline as db
from state.models import Fixup, Transcript
from tests.tui_support import SMALL_LENGTHS, make_app, scripted_router, text_of, wait_for

pytestmark = pytest.mark.anyio


async def workspace_with_fixups(tmp_path) -> tuple[str, list[int]]:
    """A finished run whose first three transcripts wait in review with one pending fixup each."""
    app = make_app(tmp_path)
    controller = RunController(app.store, app.pack, router_factory=scripted_router)
    run_id = controller.create_run(RunRequest(transcripts=4, seed=11, lengths=SMALL_LENGTHS))
    await controller.drive(run_id, settings_for(RunRequest()), lambda changes: None)
    ids = []
    for i, t in enumerate(db.run_transcripts(app.store, run_id)[:3]):
        first = db.exchanges(app.store, t.id)[0]
        with app.store.session() as s:  # seeded as rubric fixups leave it: judged once, fixups waiting
            row = s.get(Transcript, t.id)
            row.status, row.meta = "review", {**row.meta, "rubric_fixups": True}
        ids.append(
            db.save_fixup(
                app.store,
                run_id,
                t.id,
                exchange_number=1,
                reason_kind="criterion",
                reason="CQ3" if i else "MT1",
                reasoning="Exchange 1 skips the sleep topic.",
                original=first.assistant,
                proposed=first.assistant + " About sleep: a fixed wind-down could help.",
                entailment_ok=i != 1,
                entailment_reasoning="The next message still follows.",
                decision="pending",
            )
        )
    return run_id, ids


def fixup(app, fixup_id: int) -> Fixup:
    return next(f for f in db.fixups(app.store) if f.id == fixup_id)


async def test_accept_and_reject_persist_at_once_and_the_pipeline_acts(tmp_path):
    _run_id, ids = await workspace_with_fixups(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen))
        screen = app.screen
        table = screen.query_one("#fixups", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        head = text_of(screen.query_one("#fixup-head"))
        assert f"Fixup {ids[0]}" in head and "MT1" in head and "skips the sleep topic" in head
        assert "About sleep" in text_of(screen.query_one("#fixup-diff"))
        assert "Next user message" in text_of(screen.query_one("#fixup-next"))

        # Accept the first: the rewrite replaces the reply, and the transcript is judged again.
        await pilot.press("a")
        accepted = fixup(app, ids[0])
        assert accepted.decision == "accepted" and accepted.decided_by == "human"
        first = db.exchanges(app.store, accepted.transcript_id)[0]
        assert first.assistant == accepted.proposed
        await wait_for(pilot, lambda: db.transcript(app.store, accepted.transcript_id).status == "passed", timeout=20)
        await wait_for(pilot, lambda: not app.controller.active)

        # Skip one, reject the next: the decision is stored and the transcript cut or rejected.
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and table.row_count == 2)
        assert table.cursor_row == 0
        await pilot.press("s")
        assert screen._shown == ids[2]
        await pilot.press("x")
        rejected = fixup(app, ids[2])
        assert rejected.decision == "rejected" and rejected.decided_by == "human"
        assert db.transcript(app.store, rejected.transcript_id).status in ("rejected", "assessing", "passed")
        assert fixup(app, ids[1]).decision == "pending"
        await wait_for(pilot, lambda: table.row_count == 1)


async def test_filters_by_criterion_and_decision_and_toggles_the_diff(tmp_path):
    _, _ids = await workspace_with_fixups(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen))
        screen = app.screen
        table = screen.query_one("#fixups", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        screen.query_one("#criterion", Select).value = "CQ3"
        await wait_for(pilot, lambda: table.row_count == 2)
        screen.query_one("#criterion", Select).clear()
        screen.query_one("#decision", Select).value = "accepted"
        await wait_for(pilot, lambda: table.row_count == 0)
        assert "No fixups wait" in text_of(screen.query_one("#fixup-head"))
        screen.query_one("#decision", Select).value = "pending"
        await wait_for(pilot, lambda: table.row_count == 3)
        table.focus()
        await pilot.press("v")
        assert "Original" in text_of(screen.query_one("#fixup-diff"))
        await pilot.press("v")
        assert "changed" in text_of(screen.query_one("#fixup-diff"))


def test_word_diff_marks_only_what_changed():
    text = word_diff("Try a ten-minute walk after lunch.", "Try a short walk outside after lunch.")
    removed = "".join(text.plain[s.start : s.end] for s in text.spans if "strike" in str(s.style))
    added = "".join(text.plain[s.start : s.end] for s in text.spans if "green" in str(s.style))
    assert "ten" in removed and "short" in added and "outside" in added
    assert "after lunch" not in removed + added
    left, right = stacked_diff("a b c", "a x c")
    assert left.plain == "a b c" and right.plain == "a x c"
    assert change_ratio("same", "same") == 0.0 and change_ratio("a", "b") == 1.0
