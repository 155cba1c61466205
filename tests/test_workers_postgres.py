"""Worker processes on a real PostgreSQL server: one is SIGKILLed mid-run, and nothing is lost or done twice.

Three forked worker processes share one run through claims
(`FOR UPDATE SKIP LOCKED`) against a scripted OpenAI-compatible server on
loopback. Once the run is under way, the one holding transcripts is killed
with SIGKILL; the others take its claims over (at once: it ran on this host
and is gone) and finish the run. Every transcript ends decided with all its
exchanges, and every table holds each step once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Canned, Recorded, ScriptedServer
from sqlalchemy import event, func, select

from actors.safety import load_safety_net
from actors.usecases import workers
from actors.usecases.run_settings import RunSettings
from state import claims
from state import pipeline as db
from state.leases import Owner
from state.models import Exchange
from state.store import Store
from tests.test_migrations_postgres import pg_server, pg_url  # noqa: F401 - fixtures
from tests.test_workers import chat_completion, run_config
from tests.workers_support import duplicates, fork_workers, lost, worker

pytestmark = pytest.mark.slow

WORKERS, TRANSCRIPTS = 3, 9
LENGTHS = {"short": 3, "medium": 3, "long": 3, "very_long": 3}


def slow_completion(request: Recorded) -> Canned:
    """The scripted answer after 20 ms: long enough that a kill lands in the middle of steps."""
    canned = chat_completion(request)
    canned.delay_s = 0.02
    return canned


def test_sigkill_one_worker_mid_run_and_the_others_finish_it(
    pg_url: str,  # noqa: F811 - the imported fixture
    scripted_server: ScriptedServer,
    pack,
    tmp_path: Path,
):
    scripted_server.default = slow_completion
    config = str(run_config(tmp_path, scripted_server))
    store = Store(pg_url)
    run_id, _ = workers.plan_shared_run(
        store, pack, RunSettings(transcripts=TRANSCRIPTS, seed=8, lengths=LENGTHS, in_flight=2, run_config=config)
    )
    store.close()  # no connection of ours may be shared with the forked workers
    load_safety_net(pack)  # loaded once, here: the workers inherit it
    procs = fork_workers(WORKERS, worker(pg_url, pack, run_id, config, in_flight=2, ttl_s=30))
    by_pid = {p.pid: p for p in procs}
    watch = Store(pg_url)
    try:
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            holding = [w for w in claims.workers(watch, run_id) if w["pid"] in by_pid and w["transcripts"]]
            if holding and _exchanges(watch) >= 4:
                victim = by_pid[holding[0]["pid"]]
                held = holding[0]["transcripts"]
                os.kill(victim.pid, signal.SIGKILL)
                victim.join(10)  # reaped: its pid is gone, so its claims are taken over at once
            time.sleep(0.02)
        assert victim is not None, "no worker held a transcript within 60 s"
        for p in procs:
            p.join(60)
        assert victim.exitcode == -signal.SIGKILL
        assert [p.exitcode for p in procs if p is not victim] == [0] * (WORKERS - 1)
        assert lost(watch, run_id) == []
        assert set(duplicates(watch, run_id).values()) == {0}, duplicates(watch, run_id)
        assert db.get_run(watch, run_id).status == "finished"
        assert held and all(db.transcript(watch, tid).status in ("passed", "rejected") for tid in held)
        hosts = workers.run_workers(watch, run_id)
        assert sum(len(h.workers) for h in hosts) == WORKERS
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        watch.close()


def _exchanges(store: Store) -> int:
    with store.transaction() as conn:
        return conn.execute(select(func.count()).select_from(Exchange).where(Exchange.assistant != "")).scalar_one()


def test_a_claim_locks_only_what_it_takes_so_a_worker_claiming_meanwhile_finds_the_rest(
    pg_url: str,  # noqa: F811 - the imported fixture
    pack,
):
    """While one worker's claim holds its row locks, another claiming at that instant gets a free transcript
    (it once found none: the first locked 16 + its done count of rows to take one, and the other slept)."""
    a_store, b_store = Store(pg_url), Store(pg_url)
    try:
        run_id, _ = workers.plan_shared_run(
            a_store, pack, RunSettings(transcripts=6, seed=8, lengths=LENGTHS, in_flight=2)
        )
        ids = sorted(t.id for t in db.run_transcripts(a_store, run_id))
        a, b = Owner("a", "host-a", 1), Owner("b", "host-b", 2)
        meanwhile: list[str | None] = []

        def claim_while_locked(conn, cursor, statement, *_):
            if "FOR UPDATE" in statement and not meanwhile:
                meanwhile.append(claims.claim_next(b_store, run_id, b))

        event.listen(a_store.engine, "after_cursor_execute", claim_while_locked)
        done_here = ids[:2]  # transcripts a is done with this pass: left out, not locked
        assert claims.claim_next(a_store, run_id, a, exclude=done_here) == ids[2]
        assert meanwhile == [ids[0]]  # b took a free one while a's claim was open
    finally:
        a_store.close()
        b_store.close()
