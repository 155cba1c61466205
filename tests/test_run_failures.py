"""Failures that stay small: each trigger fails one transcript (or stops the run with one clear line),
never the process; the run's final status and `coach run`'s exit status say what happened."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import anyio
import pytest
from click.testing import CliRunner
from sqlalchemy import event

from actors.backends.errors import BackendError
from actors.backends.openai_backend import OpenAIBackend
from actors.backends.types import Message
from actors.events import StepFailed
from actors.pack.checks import prompt_problems
from actors.pack.prompts import render
from actors.run_config import OpenAIConfig
from actors.supervisor import GenerationSettings, Supervisor, _seed_for
from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from coach_tui.cli import main
from state import leases
from state import pipeline as db
from state.models import Rejection
from state.store import Store
from tests.conftest import Canned
from tests.openai_script import OpenAIScript, chat_posts, write_run_config
from tests.scripted import ScriptedBackend, default_script
from tests.test_supervisor import make_run, router_with

pytestmark = pytest.mark.anyio

SMALL = "short=3,medium=3,long=3,very_long=3"


def persona_marker(store, transcript_id: str, marker: str) -> None:
    """Give one transcript's persona a style its every simulator prompt carries."""
    from state.models import Persona

    p = db.persona(store, db.transcript(store, transcript_id).persona_id)
    with store.session() as s:
        row = s.get(Persona, p.id)
        row.data = {**p.data, "seed": {**p.data["seed"], "style": marker}}


# --- any exception in a step --------------------------------------------------------------------


async def test_any_exception_in_a_step_fails_that_transcript_with_its_cause_and_the_run_goes_on(store, pack):
    run_id = make_run(store, pack, n=3)
    bad = f"{run_id}-t0001"
    persona_marker(store, bad, "BREAKME")

    def script(messages, schema):
        if "BREAKME" in messages[-1].content:
            raise KeyError("profile")  # a bug anywhere in a step, not a backend error
        return default_script(messages, schema)

    bus_events = []
    supervisor = Supervisor(store, router_with(embedded=ScriptedBackend("embedded", script=script)), pack)
    receive = supervisor.bus.subscribe()
    summary = await supervisor.run(run_id)
    while True:
        try:
            bus_events.append(receive.receive_nowait())
        except anyio.WouldBlock:
            break
    assert summary.counts == {"passed": 2, "failed": 1}
    assert summary.failed == {bad: "KeyError: 'profile'"}
    t = db.transcript(store, bad)
    assert t.meta["error_kind"] == "KeyError" and t.meta["failed_from"] == "planned"  # its persona step raised
    assert summary.status == "failed" and not summary.ok and runs.exit_status(summary) == 1
    assert db.get_run(store, run_id).status == "failed"
    assert [e.error_kind for e in bus_events if isinstance(e, StepFailed)] == ["KeyError"]


# --- malformed backend payloads -----------------------------------------------------------------

MALFORMED = {
    "content is a number": lambda: {"choices": [{"message": {"role": "assistant", "content": 42}}]},
    "prompt_tokens is a word": lambda: {
        "choices": [{"message": {"role": "assistant", "content": "Hi."}}],
        "usage": {"prompt_tokens": "many", "completion_tokens": 2},
    },
    "no choices": lambda: {"id": "x", "object": "chat.completion"},
}


@pytest.mark.parametrize("shape", MALFORMED)
async def test_a_malformed_payload_is_a_backend_error_raised_in_the_backend(scripted_server, shape):
    scripted_server.default = Canned(200, MALFORMED[shape]())
    backend = OpenAIBackend("srv", OpenAIConfig(model="m", base_url=f"{scripted_server.url}/v1", max_retries=0))
    try:
        with pytest.raises(BackendError) as failed:
            await backend.complete([Message(role="user", content="hello")])
    finally:
        await backend.aclose()
    assert "srv" in str(failed.value) and ("malformed" in str(failed.value) or "unexpected" in str(failed.value))


@pytest.mark.parametrize("shape", MALFORMED)
def test_coach_run_fails_only_the_transcript_a_malformed_answer_was_for_and_exits_1(
    tmp_path, pack, scripted_server, clean_env, shape
):
    ws = tmp_path / "ws"
    store = Store.for_workspace(ws)
    config = write_run_config(tmp_path / "run.yaml", scripted_server)
    run_id, _ = runs.plan_new_run(
        store,
        pack,
        RunSettings(
            transcripts=2, seed=8, lengths={"short": 2, "medium": 2, "long": 2, "very_long": 2}, run_config=str(config)
        ),
        source="test",
    )
    bad = f"{run_id}-t0001"
    spoiled_seed = _seed_for(bad, 2, "assistant")
    scripted_server.default = OpenAIScript(
        malformed=lambda rec: MALFORMED[shape]() if rec.body.get("seed") == spoiled_seed else None
    )
    result = CliRunner().invoke(main, ["-w", str(ws), "run", "--resume", run_id])
    assert result.exit_code == 1, result.output
    assert f"run {run_id} failed in" in result.output and "1 failed, 1 passed" in result.output
    assert f"failed {bad}: BackendError: backend 'srv' (role assistant) failed" in result.output
    assert "Traceback" not in result.output
    assert db.transcript(store, f"{run_id}-t0000").status == "passed"
    # Once the server answers properly, a resume finishes the failed one and exits 0.
    scripted_server.default = OpenAIScript()
    again = CliRunner().invoke(main, ["-w", str(ws), "run", "--resume", run_id])
    assert again.exit_code == 0, again.output
    assert db.status_counts(store, run_id) == {"passed": 2}


# --- a `$` in a prompt template -----------------------------------------------------------------


async def test_a_dollar_amount_in_a_prompt_renders_as_text_and_config_check_agrees(store, pack):
    template = pack.prompts["user_sim"] + "\nThe co-pay is $5 (or $$5 written out); ${style} stays a variable.\n"
    assert render("$5, $$, ${x}y and $x", x="X") == "$5, $, Xy and X"
    assert prompt_problems({"user_sim": template}, str) == []  # config check: nothing wrong with $5
    priced = dataclasses.replace(pack, prompts={**pack.prompts, "user_sim": template})
    seen = []

    def script(messages, schema):
        seen.append(messages[-1].content)
        return default_script(messages, schema)

    run_id = make_run(store, priced, n=1, length=2)
    summary = await Supervisor(store, router_with(embedded=ScriptedBackend("embedded", script=script)), priced).run(
        run_id
    )
    assert summary.counts == {"passed": 1}
    assert any("The co-pay is $5 (or $5 written out)" in text for text in seen)


# --- a database another writer keeps locked -----------------------------------------------------


def short_busy_timeout(store: Store, ms: int) -> None:
    """Make this store give up on a locked database after ``ms`` (the product waits 30 s)."""

    @event.listens_for(store.engine, "connect")
    def _busy(dbapi_conn, _record) -> None:
        dbapi_conn.execute(f"PRAGMA busy_timeout={ms}")

    store.engine.dispose()


class LockOnce:
    """Scripted answers that, on the first assistant reply, have another connection hold the write lock."""

    def __init__(self, db_path, hold_s: float) -> None:
        self.db_path, self.hold_s = db_path, hold_s
        self.taken = threading.Event()

    def __call__(self, messages, schema):
        if messages[0].role == "system" and not self.taken.is_set():
            self.taken.set()
            other = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            threading.Timer(self.hold_s, lambda: (other.execute("COMMIT"), other.close())).start()
        return default_script(messages, schema)


@pytest.mark.parametrize(("hold_s", "outcome"), [(0.15, "passed"), (1.5, "failed")])
async def test_a_locked_database_is_retried_with_backoff_and_only_then_fails_the_transcript(
    tmp_path, pack, hold_s, outcome
):
    store = Store.for_workspace(tmp_path / "ws")
    short_busy_timeout(store, 100)
    run_id = make_run(store, pack, n=1, length=2)
    script = LockOnce(tmp_path / "ws" / "coach.db", hold_s)
    settings = GenerationSettings(busy_attempts=3, busy_backoff_s=0.05)
    started = time.monotonic()
    summary = await Supervisor(
        store, router_with(embedded=ScriptedBackend("embedded", script=script)), pack, settings=settings
    ).run(run_id)
    assert script.taken.is_set()
    tid = f"{run_id}-t0000"
    assert summary.counts == {outcome: 1}
    if outcome == "failed":
        assert summary.failed[tid].startswith(
            "OperationalError: another program kept the workspace database locked (database is locked)"
        )
        assert summary.status == "failed" and runs.exit_status(summary) == 1
    else:
        assert summary.status == "finished" and time.monotonic() - started >= hold_s


# --- a full disk --------------------------------------------------------------------------------


class FullDisk:
    """SQLite's own size limit (`max_page_count`) as a disk with no room left, switched on mid-run."""

    def __init__(self, store: Store) -> None:
        self.store, self.full = store, False

        @event.listens_for(store.engine, "connect")
        def _limit(dbapi_conn, _record) -> None:
            if self.full:
                pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
                dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    def set(self, full: bool) -> None:
        self.full = full
        self.store.engine.dispose()


async def test_a_full_disk_stops_the_run_as_failed_with_one_clear_message_and_a_resume_finishes_it(tmp_path, pack):
    store = Store.for_workspace(tmp_path / "ws")
    disk = FullDisk(store)
    run_id, settings = runs.plan_new_run(
        store,
        pack,
        RunSettings(transcripts=2, seed=3, lengths={"short": 4, "medium": 4, "long": 4, "very_long": 4}),
        source="test",
    )
    replies = []

    def script(messages, schema):
        if messages[0].role == "system":
            replies.append(1)
            if len(replies) == 3:
                disk.set(True)
        return default_script(messages, schema)

    def router(_settings):
        return router_with(embedded=ScriptedBackend("embedded", script=script))

    session = runs.RunSession(store, pack, run_id, settings, make_router=router)
    summary = await session.run()
    assert summary.status == "failed" and runs.exit_status(summary) == 1
    assert summary.error.startswith(f"run {run_id} cannot go on: the disk holding the workspace database is full")
    assert "free some space, then resume" in summary.error
    # Nothing was decided on a full disk (how far it got first depends on the room left in the file's pages).
    assert not set(summary.counts) & {"passed", "rejected", "review"}
    disk.set(False)
    again = runs.RunSession(store, pack, run_id, settings, make_router=router, owner=session.lease.owner)
    summary = await again.run()
    assert summary.status == "finished" and summary.counts == {"passed": 2}
    with sqlite3.connect(tmp_path / "ws" / "coach.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        dupes = conn.execute("select transcript_id, number from exchange group by 1, 2 having count(*) > 1")
        assert dupes.fetchall() == []


# --- a judge that answers in prose --------------------------------------------------------------


async def test_a_judge_answering_prose_on_a_safety_criterion_is_a_judge_failure_not_a_safety_rejection(store, pack):
    gate = pack.rubric.safety_gates[0]

    def prose_on_gate(messages, schema):
        if schema and "answer" in schema["properties"] and f"{gate} —" in messages[-1].content:
            return "Well, I think the coach was mostly fine here, all things considered."
        return default_script(messages, schema)

    run_id = make_run(store, pack, n=1)
    tid = f"{run_id}-t0000"
    summary = await Supervisor(
        store, router_with(embedded=ScriptedBackend("embedded", script=prose_on_gate)), pack
    ).run(run_id)
    assert summary.counts == {"failed": 1}
    assert summary.failed[tid].startswith(f"JudgeFailure: the judge gave no verdict on safety criteria {gate}")
    assert db.transcript(store, tid).meta["failed_from"] == "assessing"
    with store.session() as s:
        assert not s.exec(__import__("sqlmodel").select(Rejection)).all()  # not reported as a safety rejection
    # `--resume` retries it: with a judge that answers, it is judged (not generated or curated) again.
    judge_calls = []

    def counting(messages, schema):
        if schema and "answer" in schema["properties"]:
            judge_calls.append(1)
        assert schema is not None or messages[0].role != "system", "a resume must not generate again"
        return default_script(messages, schema)

    summary = await Supervisor(store, router_with(embedded=ScriptedBackend("embedded", script=counting)), pack).run(
        run_id
    )
    assert summary.counts == {"passed": 1} and judge_calls


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_coach_run_cleanly_as_stopped(tmp_path, scripted_server, signum):
    ws = tmp_path / "ws"
    config = write_run_config(tmp_path / "run.yaml", scripted_server)
    scripted_server.default = OpenAIScript(delay_s=0.2)
    env = {k: v for k, v in os.environ.items() if k != "COACH_RUN_CONFIG"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coach_tui",
            "-w",
            str(ws),
            "run",
            "--config",
            str(config),
            "--transcripts",
            "2",
            "--seed",
            "5",
            "--lengths",
            "short=8,medium=8,long=8,very_long=8",
            "--in-flight",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while len(chat_posts(scripted_server)) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else ""
            time.sleep(0.05)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, out
    assert f"({signal.Signals(signum).name}): the calls in flight end" in out
    assert "stopped in" in out and "continue with: coach run --resume" in out
    assert "Traceback" not in out and "TaskGroup" not in out
    store = Store.for_workspace(ws)
    run = db.latest_run(store)
    assert run.status == "stopped"
    assert leases.holder(store, leases.run_scope(run.id)) is None
    assert "failed" not in db.status_counts(store, run.id)
    assert json.dumps(run.config["summary"]["counts"])
