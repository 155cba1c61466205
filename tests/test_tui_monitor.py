"""The monitor's main flows with Textual's pilot: start a run from the form and watch it; pause,
stop and resume; pick an earlier run from History."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, TabbedContent

from coach_tui.screens.monitor import MonitorScreen
from coach_tui.screens.run_form import RunForm, parse_lengths
from coach_tui.widgets.transcript_view import AssistantTurn, UserTurn
from state import pipeline as db
from tests.tui_support import SMALL_LENGTHS, make_app, text_of, wait_for

pytestmark = pytest.mark.anyio


async def fill_form(pilot, transcripts: str = "2", lengths: str = "short=2,medium=2,long=3,very_long=3") -> None:
    form = pilot.app.screen
    assert isinstance(form, RunForm)
    form.query_one("#transcripts").value = transcripts
    form.query_one("#seed").value = "7"
    form.query_one("#lengths").value = lengths
    await pilot.press("ctrl+s")


async def test_the_form_says_how_big_the_run_is_before_it_starts(tmp_path):
    app = make_app(tmp_path)
    app.local_generation = True  # as with the embedded default: the scripted backends here are instant
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunForm))
        size = app.screen.query_one("#size")
        # the spec's defaults: 3 transcripts → one short, one medium, one long (20 + 50 + 75)
        assert str(size.render()).startswith("145 exchanges in all — a long run on local models")
        app.screen.query_one("#lengths").value = "short=3,medium=3,long=3,very_long=3"
        await pilot.pause()
        assert str(size.render()) == "9 exchanges in all"
        app.screen.query_one("#transcripts").value = "many"
        await pilot.pause()
        assert str(size.render()) == ""


async def test_start_a_run_from_the_form_and_watch_exchanges_arrive(tmp_path):
    app = make_app(tmp_path, router_kwargs={"delay_s": 0.03})
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, MonitorScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunForm))
        await fill_form(pilot, lengths="short=4,medium=4,long=4,very_long=4")
        await wait_for(pilot, lambda: app.controller.state.run_id is not None)
        run_id = app.controller.state.run_id
        monitor = app.screen
        # Exchanges appear in the transcript pane as they are written (follow mode picks a transcript).
        await wait_for(pilot, lambda: len(monitor.query(UserTurn)) >= 1 and len(monitor.query(AssistantTurn)) >= 1)
        live = app.controller.active
        await wait_for(pilot, lambda: not app.controller.active, timeout=30)
        assert live, "the run should still have been going when its first exchanges were drawn"
        await wait_for(pilot, lambda: len(monitor.query(UserTurn)) == 4)  # the followed transcript, complete
        await pilot.pause(0.3)
        assert app.controller.state.status == "finished"
        table = monitor.query_one("#transcripts", DataTable)
        assert table.row_count == 2
        assert set(db.status_counts(app.store, run_id)) <= {"passed", "rejected", "truncated"}
        headline = text_of(monitor.query_one("#headline"))
        assert run_id in headline and "2/2 done" in headline
        assert run_id in app.context_line
        # The rubric pane shows the verdict and every criterion.
        await pilot.press("r")
        rubric = text_of(monitor.query_one("#rubric"))
        assert "PASS" in rubric or "FAIL" in rubric
        assert all(c.id in rubric for c in app.pack.rubric.criteria if c.min_turns <= 2)
        await pilot.press("a")
        assert monitor.query_one(TabbedContent).active == "tab-workers"
        workers = monitor.query_one("#workers", DataTable)
        assert workers.row_count >= 4


async def test_pause_stop_and_resume_from_history(tmp_path):
    app = make_app(tmp_path, router_kwargs={"delay_s": 0.05})
    async with app.run_test(size=(80, 24)) as pilot:
        from coach_tui.run_control import RunRequest

        lengths = {"short": 4, "medium": 4, "long": 4, "very_long": 4}
        run_id = app.start_run(RunRequest(transcripts=3, seed=2, lengths=lengths, in_flight=2))
        await wait_for(pilot, lambda: app.controller.state.status == "running")
        await pilot.press("p")
        assert app.controller.supervisor.paused and app.controller.state.status == "paused"
        await pilot.press("p")
        assert not app.controller.supervisor.paused
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.controller.active)
        assert db.get_run(app.store, run_id).status == "stopped"
        # History lists the run; u resumes it and it runs to the end.
        await pilot.press("h")
        assert app.screen.query_one(TabbedContent).active == "tab-history"
        await wait_for(pilot, lambda: app.screen.query_one("#runs", DataTable).row_count == 1)
        await pilot.press("u")
        await wait_for(pilot, lambda: app.controller.active)
        await wait_for(pilot, lambda: not app.controller.active, timeout=20)
        assert db.get_run(app.store, run_id).status == "finished"
        assert not set(db.status_counts(app.store, run_id)) & {"planned", "generating"}


async def test_an_existing_run_is_shown_on_open_and_the_form_validates(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        from coach_tui.run_control import RunRequest

        run_id = app.start_run(RunRequest(transcripts=1, seed=3, lengths=SMALL_LENGTHS))
        await wait_for(pilot, lambda: app.controller.state.status == "finished", timeout=20)
    reopened = make_app(tmp_path)
    async with reopened.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert reopened.controller.state.run_id == run_id
        assert reopened.screen.query_one("#transcripts", DataTable).row_count == 1
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(reopened.screen, RunForm))
        await fill_form(pilot, transcripts="0")
        assert isinstance(reopened.screen, RunForm)  # refused, with the reason shown
        assert "Transcripts" in text_of(reopened.screen.query_one("#error"))
        await pilot.press("escape")
        assert isinstance(reopened.screen, MonitorScreen) and not reopened.controller.active


def test_lengths_field_parses_and_explains():
    assert parse_lengths("short=2, medium=3")["medium"] == 3
    assert parse_lengths("")["long"] == 75
    for bad in ("short", "short=x", "short=0", "tiny=3"):
        with pytest.raises(ValueError):
            parse_lengths(bad)
