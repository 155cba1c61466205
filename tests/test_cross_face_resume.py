"""A run started in one face and resumed in the other keeps its settings: review mode, minimum
exchanges and the token cap, read back whole from the store — checked in what the resumed run does
and in the `max_tokens` every resumed call really sent to the (loopback, scripted) model server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from coach_tui.app import CoachApp
from coach_tui.context import AppContext
from coach_tui.run_control import RunRequest
from state import pipeline as db
from state.chat import ChatStore
from tests.openai_script import OpenAIScript, chat_posts, is_judge_like, write_run_config
from tests.test_curation import BROKEN, script
from tests.tui_support import StreamingBackend, wait_for

pytestmark = pytest.mark.anyio

LENGTHS = {"short": 4, "medium": 4, "long": 4, "very_long": 4}
CAP = 32


def the_app(tmp_path: Path, ws: Path, config: Path | None = None) -> CoachApp:
    """The real app with the real backends its runs name (no scripted router)."""
    context = AppContext(workspace_option=str(ws))
    chat = StreamingBackend()
    return CoachApp(
        context,
        context.pack(),
        config_path=config,
        chat_backend_factory=lambda model: chat,
        chat_store=ChatStore(tmp_path / "chats"),
    )


def coach(ws: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "COACH_RUN_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "coach_tui", "-w", str(ws), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_posts(server, n: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(chat_posts(server)) < n:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"coach run ended early:\n{proc.stdout.read()}")
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def caps_sent(server, since: int) -> set[int]:
    """`max_tokens` of every generation call (simulator, assistant, fixup) after the first `since`."""
    return {r.body["max_tokens"] for r in chat_posts(server)[since:] if not is_judge_like(r.body)}


def check_review_held(ws: Path, run_id: str) -> None:
    """Review mode held: the broken reply waits for a person, untouched, and nothing is duplicated."""
    from state.store import Store

    store = Store.for_workspace(ws)
    (t,) = db.run_transcripts(store, run_id)
    assert t.status == "review"
    fixups = db.fixups(store, transcript_id=t.id)
    assert fixups and {f.decision for f in fixups} == {"pending"} and {f.decided_by for f in fixups} == {""}
    rows = db.exchanges(store, t.id)
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert rows[1].assistant == BROKEN


async def test_a_cli_run_killed_part_way_resumes_in_the_app_with_its_settings(tmp_path, scripted_server):
    ws = tmp_path / "ws"
    config = write_run_config(tmp_path / "run.yaml", scripted_server)
    scripted_server.default = OpenAIScript(script(break_at={2}), delay_s=0.1)
    proc = coach(
        ws,
        "run",
        "--config",
        str(config),
        "--transcripts",
        "1",
        "--seed",
        "9",
        "--review",
        "--min-exchanges",
        "2",
        "--max-tokens",
        str(CAP),
        "--in-flight",
        "1",
        "--lengths",
        ",".join(f"{k}={v}" for k, v in LENGTHS.items()),
    )
    try:
        await anyio.to_thread.run_sync(wait_for_posts, scripted_server, 3, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    killed_at = len(chat_posts(scripted_server))

    app = the_app(tmp_path, ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_for(pilot, lambda: app.controller.state.run_id is not None)
        run_id = app.controller.state.run_id
        assert app.controller.state.status == "interrupted"  # its owner died: nobody works on it
        await pilot.press("u")
        await wait_for(pilot, lambda: app.controller.active)
        settings = app.controller.settings
        assert (settings.review_mode, settings.min_exchanges, settings.max_tokens) == ("review", 2, CAP)
        await wait_for(pilot, lambda: app.controller.state.status in ("finished", "stopped", "failed"), timeout=60)
        assert app.controller.state.status == "finished", list(app.controller.state.errors)
    assert len(chat_posts(scripted_server)) > killed_at
    assert caps_sent(scripted_server, killed_at) == {CAP}
    check_review_held(ws, run_id)


async def test_an_app_run_stopped_part_way_resumes_in_the_cli_with_its_settings(tmp_path, scripted_server):
    ws = tmp_path / "ws"
    config = write_run_config(tmp_path / "run.yaml", scripted_server)
    scripted_server.default = OpenAIScript(script(break_at={2}), delay_s=0.1)
    app = the_app(tmp_path, ws, config)
    async with app.run_test(size=(110, 30)) as pilot:
        run_id = app.start_run(
            RunRequest(
                transcripts=1,
                seed=9,
                lengths=dict(LENGTHS),
                review_mode="review",
                min_exchanges=2,
                max_tokens=CAP,
                in_flight=1,
            )
        )
        await wait_for(pilot, lambda: len(chat_posts(scripted_server)) >= 3, timeout=30)
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.controller.active, timeout=30)
        assert db.get_run(app.store, run_id).status == "stopped"
    stopped_at = len(chat_posts(scripted_server))
    assert caps_sent(scripted_server, 0) == {CAP}

    proc = coach(ws, "run", "--resume", run_id)
    out, _ = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=120))
    assert proc.returncode == 0, out
    assert f"resuming run {run_id} (review review, min 2 exchanges, max {CAP} tokens, 1 in flight)" in out
    assert "1 transcript(s) wait for fixup decisions" in out
    assert len(chat_posts(scripted_server)) > stopped_at
    assert caps_sent(scripted_server, stopped_at) == {CAP}
    check_review_held(ws, run_id)


def test_a_resume_refuses_options_that_would_change_the_run(tmp_path, pack, clean_env):
    from click.testing import CliRunner

    from actors.usecases import runs
    from actors.usecases.run_settings import RunSettings
    from coach_tui.cli import main
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    run_id, _ = runs.plan_new_run(
        store, pack, RunSettings(transcripts=1, seed=2, max_tokens=CAP, review_mode="review"), source="test"
    )
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "run", "--resume", run_id, "--max-tokens", "500"])
    assert result.exit_code == 1
    assert "--max-tokens: a resumed run keeps the settings it was started with (max_tokens = 32)" in result.output


def test_runs_stored_before_the_settings_model_resume_with_their_old_keys(store, pack):
    """The CLI used to store `review` and a lengths string; the app `review_mode`, `in_flight`, `max_tokens`."""
    from actors.usecases import runs

    db.create_run(
        store,
        "cli-run",
        kind="generate",
        domain=pack.name,
        seed=7,
        config={
            "transcripts": 2,
            "lengths": "short=3,medium=4",
            "mix": "short=1,medium=1",
            "pilot": False,
            "review": True,
            "min_exchanges": 3,
            "run_config": None,
        },
        personas=[],
        transcripts=[],
    )
    db.create_run(
        store,
        "app-run",
        kind="generate",
        domain=pack.name,
        seed=8,
        config={
            "transcripts": 1,
            "lengths": {"short": 5},
            "review_mode": "review",
            "in_flight": 2,
            "max_tokens": 48,
            "source": "tui",
        },
        personas=[],
        transcripts=[],
    )
    cli = runs.stored_settings(store, "cli-run")
    assert (cli.review_mode, cli.min_exchanges, cli.lengths["short"], cli.lengths["medium"], cli.mix, cli.seed) == (
        "review",
        3,
        3,
        4,
        {"short": 1.0, "medium": 1.0},
        7,
    )
    app = runs.stored_settings(store, "app-run")
    assert (app.review_mode, app.in_flight, app.max_tokens, app.lengths["short"]) == ("review", 2, 48, 5)
    assert app.curation().review_mode == "review" and app.generation().max_tokens_assistant == 48
