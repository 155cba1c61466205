"""Progress the monitor can be trusted on: per stage, with counts, a rate that moves and an ETA; criteria
judged out of the total while a transcript is assessed; and a transcript header that says what the pane
below it shows (it once said "planned · 0/2 exchanges" above exchanges already written)."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from actors.events import AssessmentProgress, event_from
from coach_tui.run_control import RunRequest
from coach_tui.run_state import RunState
from coach_tui.widgets.run_bar import duration, stage_text
from coach_tui.widgets.transcript_table import judging_text
from coach_tui.widgets.transcript_view import AssistantTurn, TranscriptView
from state import pipeline as db
from tests.test_monitor_stream import HeldBackend, held_app, is_assistant, is_judge, reply_number
from tests.tui_support import text_of, wait_for

pytestmark = pytest.mark.anyio


def ev(kind, tid=None, **data):
    return event_from(kind, "r1", tid, data)


def generated(state: RunState, now: float) -> None:
    state.apply([ev("RunStarted", transcripts=2)], now=now)
    for number in (1, 2):
        for tid in ("r1-t0", "r1-t1"):
            state.apply([ev("ExchangeAdded", tid, number=number, target=2)], now=now + number * 10)


def test_the_exchange_rate_moves_with_time_and_is_gone_once_the_exchanges_are_written():
    state = RunState(run_id="r1")
    state.apply([ev("RunStarted", transcripts=2)], now=0.0)
    state.apply([ev("ExchangeAdded", "r1-t0", number=1, target=4)], now=10.0)
    state.apply([ev("ExchangeAdded", "r1-t1", number=1, target=4)], now=20.0)
    (gen,) = state.stages(now=20.0)
    assert (gen.name, gen.done, gen.total) == ("generating", 2, 8)
    assert gen.per_minute == pytest.approx(6.0)  # 2 exchanges in 20 s
    assert gen.eta_s == pytest.approx(60.0)  # 6 to go at 6 a minute
    # Nothing new for a while: the rate falls and the ETA grows, rather than sticking.
    (later,) = state.stages(now=80.0)
    assert later.per_minute < gen.per_minute and later.eta_s > gen.eta_s
    assert "generating 2/8 exch" in stage_text(later) and "ETA" in stage_text(later)
    # Once every exchange is written, no exchange rate is left behind (it read "0.0 exch/min").
    generated(state, 100.0)
    text = " │ ".join(stage_text(s) for s in state.stages(now=500.0))
    assert text == "generated 4/4 exch ✓"  # both transcripts now at their 2 of 2
    assert "/min" not in text


def test_assessing_counts_criteria_judged_out_of_the_total_with_a_rate_and_an_eta():
    state = RunState(run_id="r1")
    generated(state, 0.0)
    state.apply(
        [
            ev("TranscriptStatusChanged", "r1-t0", status="assessing"),
            AssessmentProgress(run_id="r1", transcript_id="r1-t0", judged=0, total=16),
        ],
        now=100.0,
    )
    state.apply([AssessmentProgress(run_id="r1", transcript_id="r1-t0", judged=8, total=16)], now=160.0)
    stages = {s.name: s for s in state.stages(now=160.0)}
    judging = stages["assessing"]
    assert (judging.done, judging.total, judging.active) == (8, 16, 1)
    assert judging.per_minute == pytest.approx(8.0)  # 8 criteria in the minute since judging began
    # 8 left here, and r1-t1 still to judge (as many as r1-t0 needs): 24 calls at 8 a minute.
    assert judging.eta_s == pytest.approx(180.0)
    assert state.rows["r1-t0"].judged == 8 and state.rows["r1-t0"].judge_total == 16
    text = stage_text(judging)
    assert text.startswith("assessing 8/16 criteria (1)") and "8.0/min" in text and "0/2 judged" in text
    # Judging ends: the row keeps its score, the stage says how many transcripts are judged.
    state.apply(
        [
            ev("AssessmentDone", "r1-t0", score=0.9, passed=True),
            ev("TranscriptFinished", "r1-t0", status="passed"),
        ],
        now=170.0,
    )
    assert state.rows["r1-t0"].judged is None
    assert stage_text({s.name: s for s in state.stages(now=170.0)}["assessing"]) == "1/2 judged"


def test_the_eta_of_assessing_counts_the_transcripts_still_to_be_judged():
    state = RunState(run_id="r1")
    state.apply([ev("RunStarted", transcripts=2)], now=0.0)
    state.apply([ev("ExchangeAdded", "r1-t0", number=1, target=1)], now=1.0)
    state.apply([ev("ExchangeAdded", "r1-t1", number=1, target=2)], now=1.0)
    state.apply(
        [
            ev("TranscriptStatusChanged", "r1-t0", status="assessing"),
            AssessmentProgress(run_id="r1", transcript_id="r1-t0", judged=0, total=10),
        ],
        now=10.0,
    )
    state.apply([AssessmentProgress(run_id="r1", transcript_id="r1-t0", judged=5, total=10)], now=40.0)
    judging = {s.name: s for s in state.stages(now=40.0)}["assessing"]
    # 5 left of r1-t0 and about 10 for r1-t1 (still generating), at 10 a minute: 90 s.
    assert judging.per_minute == pytest.approx(10.0)
    assert judging.eta_s == pytest.approx(90.0)
    # r1-t1 waits in the assessor's queue: counted as to come, not as a judging of unknown size.
    state.apply([ev("TranscriptStatusChanged", "r1-t1", status="assessing")], now=40.0)
    judging = {s.name: s for s in state.stages(now=40.0)}["assessing"]
    assert (judging.done, judging.total, judging.active) == (5, 10, 2)
    assert judging.eta_s == pytest.approx(90.0)
    assert judging_text(0, None) == "" and judging_text(5, 10) == "5/10" and judging_text(102, 153) == "66%"


def test_the_event_log_is_bounded_and_newest_last():
    state = RunState(run_id="r1")
    for number in range(1, 400):
        state.apply([ev("ExchangeAdded", "r1-t0", number=number, target=500)], now=float(number))
    state.apply([ev("UserMessage", "r1-t0", number=400)], now=400.0)  # chatter: not logged
    assert len(state.log) == 200
    assert state.log[-1].text == "exchange 399/500" and state.log[0].text == "exchange 200/500"


def test_durations_read_short():
    assert [duration(s) for s in (0.4, 42, 252, 7500)] == ["0s", "42s", "4m12s", "2h05m"]


LENGTHS = {"short": 2, "medium": 2, "long": 2, "very_long": 2}


async def test_assessing_shows_criteria_judged_out_of_the_total_and_an_eta_on_screen(tmp_path):
    backend = HeldBackend(is_judge, let_through=5)
    app = held_app(tmp_path, backend)
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            run_id = app.start_run(RunRequest(transcripts=1, seed=4, lengths=LENGTHS, in_flight=1))
            (tid,) = [t.id for t in db.run_transcripts(app.store, run_id)]
            assert await anyio.to_thread.run_sync(backend.holding.wait, 120)
            monitor = app.screen
            row = app.controller.state.rows
            await wait_for(pilot, lambda: row[tid].judged == 5)
            total = row[tid].judge_total
            assert total and total > 5  # every due criterion, once per window and judge
            await pilot.pause(1.2)  # a tick of the clock redraws what moves with time
            stages = text_of(monitor.query_one("#stages"))
            assert f"assessing 5/{total} criteria (1)" in stages and "ETA" in stages and "/min" in stages
            assert "generated 2/2 exch ✓" in stages
            headline = text_of(monitor.query_one("#headline")) + stages
            assert "exch/min" not in headline  # no exchange rate once the exchanges are written
            table = monitor.query_one("#transcripts")
            assert str(table.get_cell(tid, "score")) == f"5/{total}"
            header = text_of(monitor.query_one("#transcript-header"))
            assert f"assessing · 2/2 exchanges · 5/{total} criteria judged" in header
            backend.release()
            await wait_for(pilot, lambda: not app.controller.active, timeout=20)
            await pilot.pause(0.2)
            assert "criteria judged" not in text_of(monitor.query_one("#transcript-header"))
            assert "1/1 judged" in text_of(monitor.query_one("#stages"))
    finally:
        backend.release()


async def test_the_transcript_header_says_what_the_pane_shows(tmp_path):
    backend = HeldBackend(lambda m, s: is_assistant(m, s) and reply_number(m) == 2)
    app = held_app(tmp_path, backend)
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            lengths = dict.fromkeys(LENGTHS, 3)
            run_id = app.start_run(RunRequest(transcripts=1, seed=4, lengths=lengths, in_flight=1))
            (tid,) = [t.id for t in db.run_transcripts(app.store, run_id)]
            assert await anyio.to_thread.run_sync(backend.holding.wait, 120)
            view = app.screen.query_one(TranscriptView)
            await wait_for(pilot, lambda: view.transcript_id == tid and len(view.query(AssistantTurn)) == 2)
            await pilot.pause(0.3)
            header = text_of(view.query_one("#transcript-header"))
            assert "planned" not in header and "0/3" not in header
            assert f"{tid} · persona " in header and "generating · 1/3 exchanges" in header
            assert not view.query("#no-exchanges")
    finally:
        backend.release()
