"""The actors pane tells the truth after a run stops (it showed "curator ● busy"), its counters go on from
where they were when the run is resumed (they went back to zero), the event log shows what happened,
newest last, and the bar shows the app's CPU and memory use."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from coach_tui.run_control import RunRequest
from coach_tui.widgets.event_log import EventLog
from state import pipeline as db
from tests.test_monitor_stream import HeldBackend, held_app, is_assistant, reply_number
from tests.tui_support import scripted_router, text_of, wait_for

pytestmark = pytest.mark.anyio

LENGTHS = {"short": 3, "medium": 3, "long": 3, "very_long": 3}


def cells(table, actor: str) -> dict[str, str]:
    return {
        column: str(value)
        for column, value in zip(("actor", "state", "busy", "queue", "calls"), table.get_row(actor), strict=False)
    }


async def test_the_actors_pane_after_a_stop_and_its_counters_across_a_resume(tmp_path):
    backend = HeldBackend(lambda m, s: is_assistant(m, s) and reply_number(m) == 2)
    app = held_app(tmp_path, backend)
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            run_id = app.start_run(RunRequest(transcripts=1, seed=6, lengths=LENGTHS, in_flight=1))
            assert await anyio.to_thread.run_sync(backend.holding.wait, 120)
            await pilot.press("a")
            table = app.screen.query_one("#workers")
            await wait_for(pilot, lambda: "assistant" in table.rows and "busy" in cells(table, "assistant")["state"])
            await pilot.press("s")
            await wait_for(pilot, lambda: not app.controller.active, timeout=20)
            await pilot.pause(0.3)
            # Stopped: nothing of this app works on the run, and the pane says so.
            for actor in ("persona", "simulator", "assistant", "curator", "assessor"):
                assert "busy" not in cells(table, actor)["state"], cells(table, actor)
            # What the run did, counted from its events in the store: 2 user messages, 1 reply.
            assert cells(table, "simulator")["calls"] == "2" and cells(table, "assistant")["calls"] == "1"
            before = app.controller.stats()
            assert before["simulator"].prompt_tokens > 0 and before["assistant"].completion_tokens > 0
            backend.release()
            await pilot.press("u")
            await wait_for(pilot, lambda: app.controller.state.status == "finished", timeout=20)
            assert db.get_run(app.store, run_id).status == "finished" and not app.controller.active
            # The resumed pass went on from those counts (3 messages and 3 replies in all), live and after.
            live = app.controller.session.supervisor.stats
            assert (live["simulator"].calls, live["assistant"].calls) == (3, 3)
            assert live["simulator"].prompt_tokens > before["simulator"].prompt_tokens
            await pilot.pause(0.3)
            assert cells(table, "simulator")["calls"] == "3" and cells(table, "assistant")["calls"] == "3"
            assert cells(table, "assessor")["calls"] == "1"
            # The event log: both passes, newest last.
            log = app.screen.query_one(EventLog)
            await wait_for(pilot, lambda: any("run finished" in line for line in log.texts))
            texts = log.texts
            assert any("run stopped" in line for line in texts)
            assert any("exchange 3/3" in line for line in texts) and any("judged" in line for line in texts)
            assert "run finished" in texts[-1]
            usage = text_of(app.screen.query_one("#usage"))
            assert "cpu " in usage and "% · mem " in usage and ("MB" in usage or "GB" in usage)
    finally:
        backend.release()


async def test_counters_rebuilt_from_the_store_match_what_the_supervisor_counted(tmp_path, pack):
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    run_id, settings = runs.plan_new_run(
        store, pack, RunSettings(transcripts=2, seed=8, lengths=LENGTHS), source="test"
    )
    session = runs.RunSession(store, pack, run_id, settings, make_router=lambda s: scripted_router())
    await session.run()
    live, stored = session.supervisor.stats, runs.actor_counters(store, run_id)
    for actor in ("persona", "simulator", "assistant", "curator", "assessor"):
        counted = (live[actor].calls, live[actor].prompt_tokens, live[actor].completion_tokens, live[actor].errors)
        rebuilt = (
            stored[actor].calls,
            stored[actor].prompt_tokens,
            stored[actor].completion_tokens,
            stored[actor].errors,
        )
        assert rebuilt == counted, actor
    assert stored["assistant"].calls == 2 * 3 and stored["assessor"].calls == 2
