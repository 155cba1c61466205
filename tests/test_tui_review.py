"""The review screen with Textual's pilot: step through pending fixups, accept and reject them,
and see the store change at once (and the pipeline act on it)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Select

from coach_tui.run_control import RunController, RunRequest, settings_for
from coach_tui.screens.confirm import Confirm
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

        # Accept the first: the rewrite replaces the reply, and the transcript is judged again once the
        # person leaves Review (until then the decision can be undone).
        await pilot.press("a")
        accepted = fixup(app, ids[0])
        assert accepted.decision == "accepted" and accepted.decided_by == "human"
        first = db.exchanges(app.store, accepted.transcript_id)[0]
        assert first.assistant == accepted.proposed
        await pilot.pause(0.2)
        assert db.transcript(app.store, accepted.transcript_id).status == "assessing"
        await pilot.press("1")
        await wait_for(pilot, lambda: db.transcript(app.store, accepted.transcript_id).status == "passed", timeout=20)
        await wait_for(pilot, lambda: not app.controller.active)

        # Skip one, reject the next: the decision is stored and the transcript cut or rejected.
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and table.row_count == 2)
        assert table.cursor_row == 0
        await pilot.press("s")
        assert screen._shown == ids[2]
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
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


# --- asking before a rejection, undo, run ids (fast: the store is built directly) ----------------


def review_run(store, pack, run_id: str, *, min_exchanges: int, exchanges: int, at: int) -> tuple[str, int]:
    """A finished review-mode run whose transcript `t0000` has a pending fixup at exchange `at`."""
    from actors.usecases.run_settings import RunSettings

    settings = RunSettings(review_mode="review", min_exchanges=min_exchanges)
    tid = f"{run_id}-t0000"
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=1,
        config={"settings": settings.stored()},
        personas=[(f"{run_id}-p0", 1, {})],
        transcripts=[(tid, f"{run_id}-p0", exchanges)],
    )
    db.set_status(store, run_id, tid, "generating")
    for n in range(1, exchanges + 1):
        db.add_user_message(store, run_id, tid, n, f"user {n}")
        db.set_assistant_reply(store, run_id, tid, n, f"reply {n}")
    db.set_status(store, run_id, tid, "curating")
    fixup_id = db.save_fixup(
        store,
        run_id,
        tid,
        exchange_number=at,
        reason_kind="criterion",
        reason="CQ2",
        reasoning="generic",
        original=f"reply {at}",
        proposed=f"a better reply {at}",
        entailment_ok=True,
        entailment_reasoning="fits",
        decision="pending",
    )
    db.set_status(store, run_id, tid, "review")
    db.set_run_status(store, run_id, "finished")
    return tid, fixup_id


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def open_review(pilot, rows: int) -> ReviewScreen:
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReviewScreen))
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.query_one("#fixups", DataTable).row_count == rows)
    return screen


async def test_reject_says_it_rejects_the_whole_transcript_and_asks_first(tmp_path):
    """`x` used to reject a whole 3-exchange transcript at once: the run's minimum (10) left nothing to cut to."""
    app = make_app(tmp_path)
    tid, fixup_id = review_run(app.store, app.pack, "run-1-aaaaaa", min_exchanges=10, exchanges=3, at=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_review(pilot, 1)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = text_of(app.screen.query_one("#question"))
        assert "whole transcript" in question and "minimum of 10" in question and "only 1 exchange" in question
        assert "run-1-aaaaaa t0000" in question
        await pilot.press("n")  # changed my mind: nothing happened
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen))
        assert fixup(app, fixup_id).decision == "pending" and db.transcript(app.store, tid).status == "review"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: fixup(app, fixup_id).decision == "rejected")
        assert db.transcript(app.store, tid).status == "rejected"


async def test_reject_says_where_it_cuts_and_undo_brings_everything_back(tmp_path):
    app = make_app(tmp_path)
    tid, fixup_id = review_run(app.store, app.pack, "run-2-bbbbbb", min_exchanges=2, exchanges=6, at=5)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_review(pilot, 1)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = text_of(app.screen.query_one("#question"))
        assert "cut at exchange 5" in question and "exchanges 1–4 of 6 are kept" in question
        await pilot.press("y")
        await wait_for(pilot, lambda: fixup(app, fixup_id).decision == "rejected")
        assert len(db.exchanges(app.store, tid)) == 4 and db.transcript(app.store, tid).status == "assessing"
        assert db.rejections(app.store, "run-2-bbbbbb")

        await pilot.press("u")  # undo: the cut exchanges, the decision and the status come back
        await wait_for(pilot, lambda: fixup(app, fixup_id).decision == "pending")
        assert [e.assistant for e in db.exchanges(app.store, tid)] == [f"reply {n}" for n in range(1, 7)]
        assert db.transcript(app.store, tid).status == "review" and not db.rejections(app.store, "run-2-bbbbbb")
        await wait_for(pilot, lambda: screen.query_one("#fixups", DataTable).row_count == 1)
        assert screen._shown == fixup_id

        await pilot.press("a")  # accept, then undo: the original reply is back
        assert db.exchanges(app.store, tid)[4].assistant == "a better reply 5"
        await pilot.press("u")
        await wait_for(pilot, lambda: fixup(app, fixup_id).decision == "pending")
        assert db.exchanges(app.store, tid)[4].assistant == "reply 5"
        assert db.transcript(app.store, tid).status == "review"
        await pilot.press("u")
        assert any("No decision to undo" in n for n in notes(app))

        # While it is being judged again, and once it was, the decision stands and undo says why.
        await pilot.press("a")
        app.judging.add(tid)
        await pilot.press("u")
        assert fixup(app, fixup_id).decision == "accepted"
        assert any("being judged again now" in n for n in notes(app))
        app.judging.discard(tid)
        save_judgement(app.store, tid)
        screen.query_one("#decision", Select).value = "accepted"
        await wait_for(pilot, lambda: screen.query_one("#fixups", DataTable).row_count == 1)
        await pilot.press("u")
        assert fixup(app, fixup_id).decision == "accepted"
        assert any("judged again" in n and "moved on" in n for n in notes(app))


def save_judgement(store, transcript_id: str) -> None:
    """The transcript judged again after the decision (as the app does when the person leaves Review)."""
    result = {"score": 0.9, "passed": True, "safety_gate_failed": False, "category_scores": {}, "failed_checks": []}
    db.save_assessment(
        store,
        db.transcript(store, transcript_id).run_id,
        transcript_id,
        stage="after_review",
        exchange_count=6,
        rubric_version=1,
        result=result,
        answers=[],
        status="passed",
    )


def test_undo_is_refused_for_a_later_decision_and_for_the_pipelines_own(store, pack):
    from actors.usecases import curation
    from state.review_undo import CannotUndo

    tid, first = review_run(store, pack, "run-3-cccccc", min_exchanges=2, exchanges=6, at=5)
    second = db.save_fixup(
        store,
        "run-3-cccccc",
        tid,
        exchange_number=3,
        reason_kind="criterion",
        reason="CQ4",
        reasoning="vague",
        original="reply 3",
        proposed="a better reply 3",
        entailment_ok=True,
        entailment_reasoning="fits",
        decision="pending",
    )
    curation.decide(store, first, accept=True)
    curation.decide(store, second, accept=False)  # cut before exchange 3: exchanges 3–6 leave
    with pytest.raises(CannotUndo, match="undo that one first"):
        curation.undo(store, first)
    undone = curation.undo(store, second)
    assert undone.status == "review" and len(db.exchanges(store, tid)) == 6
    assert db.exchanges(store, tid)[4].assistant == "a better reply 5"  # the earlier accept still stands
    assert curation.undo(store, first).status == "review"
    assert db.exchanges(store, tid)[4].assistant == "reply 5"
    with pytest.raises(CannotUndo, match="not decided yet"):
        curation.undo(store, first)
    auto = db.save_fixup(
        store,
        "run-3-cccccc",
        tid,
        exchange_number=2,
        reason_kind="artifact",
        reason="markdown",
        reasoning="",
        original="reply 2",
        proposed="reply 2",
        entailment_ok=True,
        entailment_reasoning="",
        decision="accepted",
        decided_by="auto",
    )
    with pytest.raises(CannotUndo, match="only a review decision"):
        curation.undo(store, auto)


async def test_run_ids_show_wherever_transcript_ids_do(tmp_path):
    """Both runs have a transcript `t0000`: the list and the detail say which run each fixup is in."""
    app = make_app(tmp_path)
    review_run(app.store, app.pack, "run-4-dddddd", min_exchanges=2, exchanges=6, at=5)
    review_run(app.store, app.pack, "run-5-eeeeee", min_exchanges=2, exchanges=6, at=4)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_review(pilot, 2)
        table = screen.query_one("#fixups", DataTable)
        assert [str(c.label) for c in table.columns.values()][:3] == ["#", "run", "id"]
        assert {str(table.get_row_at(i)[1]) for i in range(2)} == {"run-4-dddddd", "run-5-eeeeee"}
        assert text_of(screen.query_one("#fixups-run")) == "2 runs"
        head = text_of(screen.query_one("#fixup-head"))
        assert "run-4-dddddd · t0000 exchange 5" in head
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert "run-4-dddddd t0000" in text_of(app.screen.query_one("#question"))
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 1)  # one run left: named above the list
        assert "run" not in [str(c.label) for c in table.columns.values()]
        assert text_of(screen.query_one("#fixups-run")) == "run run-5-eeeeee"
