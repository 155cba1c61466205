"""A run another process works on is shown as such and followed live from the store: one the app showed
as interrupted comes alive when a shell resumes it (it stayed "interrupted" and never updated), and a run
started in a shell while the app shows the newest run takes its place — with a real `coach run`."""

from __future__ import annotations

import os
import signal
import socket

import anyio
import pytest

from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from coach_tui.widgets.event_log import EventLog
from state import pipeline as db
from state.leases import Owner
from tests.openai_script import OpenAIScript, is_judge_like, write_run_config
from tests.test_cross_face_resume import coach, the_app
from tests.tui_support import make_app, scripted_router, text_of, wait_for

pytestmark = pytest.mark.anyio

SMALL = {"short": 3, "medium": 3, "long": 3, "very_long": 3}


def shell_session(store, pack, run_id: str, settings: RunSettings, delay_s: float = 0.1) -> runs.RunSession:
    """Another process working on the run: its own lease owner (alive: this host, this pid), slow calls."""
    return runs.RunSession(
        store,
        pack,
        run_id,
        settings,
        make_router=lambda s: scripted_router(delay_s=delay_s),
        owner=Owner(id="a-shell", host=socket.gethostname(), pid=os.getpid()),
    )


async def test_an_interrupted_run_resumed_in_a_shell_is_followed_live(tmp_path, pack):
    app = make_app(tmp_path)
    store = app.store
    run_id, settings = runs.plan_new_run(store, pack, RunSettings(transcripts=2, seed=4, lengths=SMALL), source="cli")
    db.set_run_status(store, run_id, "running")  # its process was killed: no lease, nobody works on it
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_for(pilot, lambda: app.controller.state.run_id == run_id)
        assert app.controller.state.status == "interrupted"
        await pilot.press("h")
        history = app.screen.query_one("#runs")
        await wait_for(pilot, lambda: history.row_count == 1)
        assert str(history.get_cell(run_id, "status")) == "interrupted"  # not "running": nobody works on it
        async with anyio.create_task_group() as tg:
            tg.start_soon(shell_session(store, pack, run_id, settings).run)
            await wait_for(pilot, lambda: app.controller.state.status == "elsewhere", timeout=60)
            await wait_for(pilot, lambda: str(history.get_cell(run_id, "status")) == "running elsewhere")
            headline = text_of(app.screen.query_one("#headline"))
            assert f"running in another process ({socket.gethostname()} pid {os.getpid()}" in headline
            assert f"{run_id} (running in another process)" in app.context_line
            await wait_for(pilot, lambda: app.controller.state.exchanges[0] > 0, timeout=30)  # it had none
            assert "exch" in text_of(app.screen.query_one("#stages"))  # generating, or generated
            await pilot.press("a")
            log = app.screen.query_one(EventLog)
            await wait_for(pilot, lambda: any("exchange " in line for line in log.texts))
            await wait_for(pilot, lambda: app.controller.state.status == "finished", timeout=60)
        assert app.controller.state.exchanges == (6, 6)
        assert app.controller.state.done == 2 and not app.controller.active
        table = app.screen.query_one("#workers")
        assert str(table.get_row("assistant")[4]) == "6"  # counted from the shell's events
        assert "busy" not in str(table.get_row("assistant")[1])


async def test_a_run_started_in_a_shell_takes_the_place_of_the_newest_run_shown(tmp_path, pack):
    app = make_app(tmp_path)
    store = app.store
    first, settings = runs.plan_new_run(store, pack, RunSettings(transcripts=1, seed=1, lengths=SMALL), source="cli")
    await shell_session(store, pack, first, settings, delay_s=0).run()
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_for(pilot, lambda: app.controller.state.run_id == first)
        assert app.controller.state.status == "finished"
        second, settings = runs.plan_new_run(
            store, pack, RunSettings(transcripts=1, seed=2, lengths=SMALL), source="cli"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(shell_session(store, pack, second, settings).run)
            await wait_for(pilot, lambda: app.controller.state.run_id == second, timeout=10)
            await wait_for(pilot, lambda: app.controller.state.status == "elsewhere", timeout=60)
            await wait_for(pilot, lambda: app.controller.state.status == "finished", timeout=60)
        assert second in text_of(app.screen.query_one("#headline"))
        assert app.controller.state.exchanges == (3, 3)


async def test_a_real_coach_run_in_a_shell_is_followed_by_the_app_opened_before_it(tmp_path, scripted_server):
    ws = tmp_path / "ws"
    config = write_run_config(tmp_path / "run.yaml", scripted_server)
    slow, quick = OpenAIScript(delay_s=0.3), OpenAIScript()
    # Conversation calls take a while (a run of a few seconds, to be seen while it goes); judging is quick.
    scripted_server.default = lambda recorded: (quick if is_judge_like(recorded.body or {}) else slow)(recorded)
    app = the_app(tmp_path, ws)  # opens (and creates) the workspace; no run in it yet
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause(0.2)
        assert app.controller.state.run_id is None
        lengths = "short=4,medium=4,long=4,very_long=4"
        proc = coach(ws, "run", "--config", str(config), "--transcripts", "1", "--seed", "9", "--lengths", lengths)
        try:
            await wait_for(pilot, lambda: app.controller.state.status == "elsewhere", timeout=90)
            assert f"pid {proc.pid} since" in (app.controller.state.owner or "")
            await wait_for(pilot, lambda: app.controller.state.exchanges[0] >= 1, timeout=90)
            assert "generating" in text_of(app.screen.query_one("#stages"))
            proc.send_signal(signal.SIGTERM)  # stopped in its shell: the app sees that too
            assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stdout.read()
            await wait_for(pilot, lambda: app.controller.state.status == "stopped", timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "stopped" in text_of(app.screen.query_one("#headline"))
        assert app.controller.state.owner is None
