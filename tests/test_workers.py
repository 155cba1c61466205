"""Workers sharing one run (SQLite here; test_workers_postgres.py kills worker processes on PostgreSQL).

Several `WorkerSession`s on one store, each with its own claims: every
transcript is worked to the end once, the run's status is written by whoever
sees it done, a stalled worker's lost claim is dropped, and a run is either
one owner's or its workers', never both at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from conftest import Canned, Recorded, ScriptedServer
from sqlalchemy import event, update

from actors.shared_run import ClaimFeeder
from actors.usecases import runs, workers
from actors.usecases.run_settings import RunSettings
from coach_tui.cli import main
from state import claims, leases
from state import pipeline as db
from state.errors import CoachError
from state.leases import LeaseHeld, Owner
from state.models import Exchange, Lease
from state.status import TERMINAL
from tests.scripted import default_script
from tests.tui_support import scripted_router

pytestmark = pytest.mark.anyio

SMALL = {"short": 2, "medium": 2, "long": 2, "very_long": 2}
LENGTHS = "short=2,medium=2,long=2,very_long=2"


def planned(store, pack, n: int) -> tuple[str, RunSettings]:
    return workers.plan_shared_run(store, pack, RunSettings(transcripts=n, seed=5, lengths=SMALL, in_flight=2))


def session(store, pack, run_id: str, settings: RunSettings, **kwargs) -> workers.WorkerSession:
    return workers.WorkerSession(
        store, pack, run_id, settings, make_router=lambda _: scripted_router(delay_s=0.01), poll_s=0.05, **kwargs
    )


async def test_two_workers_share_a_run_and_each_transcript_is_worked_once(store, pack):
    run_id, settings = planned(store, pack, 6)
    a, b = session(store, pack, run_id, settings), session(store, pack, run_id, settings)
    results = {}

    async def work(name, s):
        results[name] = await s.run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, "a", a)
        tg.start_soon(work, "b", b)
    transcripts = db.run_transcripts(store, run_id)
    assert all(t.status in TERMINAL for t in transcripts), [t.status for t in transcripts]
    assert results["a"].status == results["b"].status == "finished"
    assert db.get_run(store, run_id).status == "finished"
    # Both took part, and between them every transcript was taken up once.
    assert a.feeder.claimed >= 1 and b.feeder.claimed >= 1
    assert a.feeder.finished_here + b.feeder.finished_here == 6
    with store.session() as s:
        from sqlmodel import select

        keys = Counter((e.transcript_id, e.number) for e in s.exec(select(Exchange)))
    assert keys and max(keys.values()) == 1 and len(keys) == sum(t.target_exchanges for t in transcripts)
    # Each left: no claim is held, and both are on record as having worked the run.
    assert claims.workers(store, run_id) == []
    hosts = workers.run_workers(store, run_id)
    assert sum(len(h.workers) for h in hosts) == 2 and all(not w.live for h in hosts for w in h.workers)
    assert a.summary(results["a"]).workers == 2


async def test_a_feeder_fills_free_slots_in_one_transaction_and_releases_off_the_event_loop(store, pack):
    """Claims one transaction per fill, not one per transcript; a done transcript's release is written
    by the feeder (in its thread, with the next claims), never on the event loop that reported it."""
    run_id, _ = planned(store, pack, 6)
    feeder = ClaimFeeder(store, run_id, slots=4, poll_s=0.05)
    feeder.join()
    begun: list[bool] = []  # one per transaction: whether it ran on the event loop's thread
    event.listen(store.engine, "begin", lambda _: begun.append(threading.current_thread() is threading.main_thread()))
    started: list[str] = []

    async def start(tid: str) -> None:
        started.append(tid)

    async def until(n: int) -> None:
        with anyio.fail_after(10):
            while len(started) < n:
                await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feeder.work, start, lambda: None)
        await until(4)
        assert begun == [False]  # four claims, one transaction, off the loop
        begun.clear()
        feeder.finished(started[0])
        feeder.finished(started[1])
        assert begun == []  # nothing written where the supervisor reported them
        await until(6)
        await anyio.sleep(0.1)
        assert begun == [False]  # two releases and the two claims that refill the slots: one transaction
        tg.cancel_scope.cancel()
    assert len(set(started)) == 6 and feeder.claimed == 6 and feeder.finished_here == 2
    (mine,) = claims.workers(store, run_id)
    assert sorted(mine["transcripts"]) == sorted(started[2:])  # the two done ones were given back


def test_claim_many_takes_the_free_ones_together_and_gives_back_in_the_same_transaction(store, pack):
    run_id, _ = planned(store, pack, 5)
    a, b = Owner("a", "host-a", 1), Owner("b", "host-b", 2)
    first = claims.claim_many(store, run_id, a, 3)
    second = claims.claim_many(store, run_id, b, 3)
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert claims.claim_many(store, run_id, b, 2) == []  # nothing free
    back = claims.claim_many(store, run_id, b, 1, release=first[:1])  # only a's own releases count
    assert back == [] and leases.holder(store, claims.transcript_scope(first[0])).owner == "a"
    assert claims.claim_many(store, run_id, b, 1, release=[], exclude=()) == []
    assert claims.claim_many(store, run_id, a, 1, release=first[:1], exclude=first[:1]) == []
    assert leases.holder(store, claims.transcript_scope(first[0])) is None  # given back
    assert claims.claim_many(store, run_id, b, 1) == first[:1]


async def test_a_claim_taken_over_after_a_stall_is_dropped_at_its_next_step(store, pack):
    run_id, settings = planned(store, pack, 1)
    w = session(store, pack, run_id, settings, claim_ttl_s=0.3)
    (tid,) = [t.id for t in db.run_transcripts(store, run_id)]
    other = Owner("other-worker", "elsewhere", 99)

    async def steal_and_finish():
        # The worker stalls (its claim expires), another worker takes the transcript over...
        while tid not in w.feeder.held:
            await anyio.sleep(0.01)
        with store.transaction() as conn:
            conn.execute(
                update(Lease)
                .where(Lease.scope == claims.transcript_scope(tid))
                .values(
                    owner=other.id, host=other.host, pid=other.pid, expires_at=leases.now_utc() + timedelta(seconds=60)
                )
            )
        # ... this one learns it at its next heartbeat, while its persona call is still out, and drops
        # the transcript at its next step instead of going on with it...
        while tid in w.feeder.held:
            await anyio.sleep(0.01)
        # ... and the other worker ends it: the run is done, so this worker ends too.
        db.set_status(store, run_id, tid, "failed")

    slow = scripted_router(delay_s=0.6)  # the persona call outlasts a few heartbeats
    w.make_router = lambda _: slow
    async with anyio.create_task_group() as tg:
        tg.start_soon(steal_and_finish)
        with anyio.fail_after(20):
            await w.run()
    assert db.exchanges(store, tid) == []  # no step after the takeover ran here
    # Its claim was not released by the worker that lost it: the lease is still the other's.
    assert leases.holder(store, claims.transcript_scope(tid)).owner == other.id
    assert w.feeder.finished_here == 0


async def test_a_run_is_one_owners_or_its_workers_never_both(store, pack):
    run_id, settings = planned(store, pack, 2)
    owner = runs.RunSession(store, pack, run_id, settings)
    owner.lease.take()
    with pytest.raises(LeaseHeld, match=f"run {run_id}"):
        session(store, pack, run_id, settings).check_owner()
    owner.lease.release()
    w = session(store, pack, run_id, settings)
    w.feeder.join()
    with pytest.raises(CoachError, match=r"being worked on by 1 worker\(s\).*coach worker --run"):
        runs.RunSession(store, pack, run_id, settings).check_owner()
    refused = runs.RunSession(store, pack, run_id, settings)
    with pytest.raises(CoachError, match="being worked on by 1 worker"):  # the app's way in: no early check
        await refused.run()
    assert leases.holder(store, leases.run_scope(run_id)) is None  # and the lease it took went back
    w.feeder.leave()
    runs.RunSession(store, pack, run_id, settings).check_owner()  # the worker left: the run may be owned


async def test_a_stopped_worker_leaves_the_run_to_the_others(store, pack):
    run_id, settings = planned(store, pack, 4)
    other = Owner("still-working", "elsewhere", 7)
    claims.join(store, run_id, other, ttl_s=60)
    w = session(store, pack, run_id, settings)
    w.make_router = lambda _: scripted_router(delay_s=0.2)

    async def stop_soon():
        while not w.feeder.held:
            await anyio.sleep(0.01)
        w.stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_soon)
        summary = await w.run()
    assert summary.status == "stopped"
    assert db.get_run(store, run_id).status == "running"  # the other worker is still on it
    assert [x["owner"] for x in claims.workers(store, run_id)] == []  # its claims went back at once


def chat_completion(request: Recorded) -> Canned:
    from actors.backends.types import Message

    body = request.body
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
    content = default_script(messages, schema)
    return Canned(
        200,
        {
            "id": "scripted",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10},
        },
    )


def run_config(tmp_path: Path, server: ScriptedServer) -> Path:
    config = tmp_path / "run-config.yaml"
    config.write_text(
        "backends:\n  loop:\n    kind: openai\n    model: scripted\n"
        f"    base_url: {server.url}/v1\n    max_retries: 0\n    max_concurrency: 8\n"
        "roles:\n"
        + "".join(f"  {role}: loop\n" for role in ("persona", "user_sim", "assistant", "fixup", "judge", "eval_target"))
    )
    return config


def test_coach_worker_plans_a_run_and_a_second_worker_finds_it_done(
    tmp_path: Path, scripted_server: ScriptedServer, anyio_backend
):
    scripted_server.default = chat_completion
    config, ws = run_config(tmp_path, scripted_server), tmp_path / "ws"
    cli = CliRunner()
    first = cli.invoke(
        main,
        ["-w", str(ws), "worker", "--new", "2", "--seed", "3", "--lengths", LENGTHS, "--config", str(config)],
    )
    assert first.exit_code == 0, first.output
    assert "join it with" in first.output and "worked by 1 worker(s) on 1 host(s)" in first.output
    # The same store by URL, as a worker on another machine names it.
    url = f"sqlite:///{ws / 'coach.db'}"
    second = cli.invoke(main, ["-w", str(ws), "worker", "--db", url, "--run", "latest", "--config", str(config)])
    assert second.exit_code == 0, second.output
    assert "this one took 0 transcript(s)" in second.output and "worked by 2 worker(s)" in second.output
    wrong = cli.invoke(main, ["-w", str(ws), "worker", "--new", "2", "--run", "latest"])
    assert wrong.exit_code == 2 and "--new plans a run and --run joins one" in wrong.output


async def test_the_monitor_shows_workers_per_host_and_what_each_holds(tmp_path):
    from coach_tui.widgets.run_workers import RunWorkers
    from tests.tui_support import make_app, text_of, wait_for

    app = make_app(tmp_path)
    run_id, _ = planned(app.store, app.pack, 3)
    a, b, gone = Owner("w-a", "gpu-a", 11), Owner("w-b", "gpu-b", 12), Owner("w-c", "gpu-b", 13)
    for owner in (a, b, gone):
        claims.join(app.store, run_id, owner, ttl_s=60)
    held = [claims.claim_next(app.store, run_id, a, ttl_s=60), claims.claim_next(app.store, run_id, a, ttl_s=60)]
    claims.leave(app.store, run_id, gone)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.controller.state.run_id == run_id)
        await pilot.press("a")
        pane = app.screen.query_one(RunWorkers)
        await wait_for(pilot, lambda: "workers:" in text_of(pane), timeout=10)
        shown = text_of(pane)
        assert "workers: 2 live of 3, on 2 host(s)" in shown
        assert f"pid 11: {', '.join(sorted(held))}" in shown
        assert "pid 12: idle" in shown and "pid 13: left" in shown
