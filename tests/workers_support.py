"""Worker processes on one store, and what the store must hold afterwards (tests and bench_workers.py).

Workers are forked from a process that has already imported coach and
loaded the crisis net: each is a real process with its own store
connections, killed with a real SIGKILL, but none spends seconds of a
shared machine's CPU loading what its siblings loaded already.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Callable

import anyio
from sqlalchemy import select

from actors.usecases import workers
from state import pipeline as db
from state import steps
from state.models import (
    Assessment,
    CriterionAnswer,
    Event,
    Exchange,
    Fixup,
    Persona,
    Rejection,
    Transcript,
    WindowAnswer,
)
from state.status import TERMINAL
from state.store import Store

STEP_KEYS = {
    Persona: ("id",),
    Transcript: ("id",),
    Exchange: steps.EXCHANGE_KEY,
    Assessment: steps.ASSESSMENT_KEY,
    WindowAnswer: steps.WINDOW_ANSWER_KEY,
    CriterionAnswer: steps.CRITERION_ANSWER_KEY,
    Fixup: steps.FIXUP_KEY,
    Rejection: steps.REJECTION_KEY,
}
"""Each table's step key (`state.steps`): one row per step, however many workers ran it."""

EVENT_KEYS = {
    "PersonaReady": ("transcript_id",),
    "UserMessage": ("transcript_id", "number"),
    "ExchangeAdded": ("transcript_id", "number"),
    "AssessmentDone": ("transcript_id", "stage"),
    "FixupProposed": ("fixup_id",),
    "DecisionMade": ("fixup_id",),
    "Rejection": ("transcript_id", "stage", "kept"),
}
"""The events that mark a step, and which of their fields name it (also read by `test_kill_resume`)."""


def duplicates(store: Store, run_id: str) -> dict[str, int]:
    """Rows found more than once per table (by step key) and per step event; every value 0 when none is."""
    found: dict[str, int] = {}
    tids = {t.id for t in db.run_transcripts(store, run_id)}
    with store.transaction() as conn:
        for model, key in STEP_KEYS.items():
            rows = conn.execute(select(*(getattr(model, k) for k in key))).all()
            found[model.__tablename__] = sum(n - 1 for n in Counter(map(tuple, rows)).values())
        events = conn.execute(select(Event.kind, Event.payload).where(Event.run_id == run_id)).all()
    for kind, fields in EVENT_KEYS.items():
        keys = Counter(tuple(p.get(f) for f in fields) for k, p in events if k == kind)
        found[f"event {kind}"] = sum(n - 1 for n in keys.values())
    # A status event says the status moved: the same move twice in a row is a replayed write.
    last: dict[str, str] = {}
    repeated = 0
    for k, p in events:
        if k == "TranscriptStatus" and p.get("transcript_id") in tids:
            status = p.get("status")
            repeated += status == last.get(p["transcript_id"]) and status != "failed"
            last[p["transcript_id"]] = status
    found["event TranscriptStatus (repeated)"] = repeated
    return found


def lost(store: Store, run_id: str) -> list[str]:
    """Transcripts not decided, or decided without every exchange they were planned to have."""
    missing = []
    for t in db.run_transcripts(store, run_id):
        done = [e for e in db.exchanges(store, t.id) if e.assistant]
        if t.status not in TERMINAL or len(done) != t.target_exchanges:
            missing.append(f"{t.id} ({t.status}, {len(done)}/{t.target_exchanges} exchanges)")
    return missing


def fork_workers(
    n: int, work: Callable[[int], None], *, start: multiprocessing.synchronize.Event | None = None
) -> list[multiprocessing.Process]:
    """`n` forked processes each running `work(i)`; with `start`, each waits for it before working.

    The parent must hold no open database connections (close its store first): a forked child must
    not share a socket with its parent.
    """
    ctx = multiprocessing.get_context("fork")

    def child(i: int) -> None:
        code = 1
        try:
            if start is not None:
                start.wait()
            work(i)
            code = 0
        except BaseException:  # noqa: BLE001 - told on stderr; the exit status says it
            traceback.print_exc()
        finally:
            os._exit(code)  # leave without running the parent's exit hooks (pytest's, the server's)

    procs = [ctx.Process(target=child, args=(i,), daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    return procs


def worker(url: str, pack, run_id: str, run_config: str, *, in_flight: int, ttl_s: float, poll_s: float = 0.5):
    """What one forked worker does: join the run on its own store connections and work it to the end."""

    def work(_: int) -> None:
        store = Store(url)
        try:
            _, settings = workers.settings_to_join(store, pack, run_id, in_flight=in_flight, run_config=run_config)
            session = workers.WorkerSession(store, pack, run_id, settings, claim_ttl_s=ttl_s, poll_s=poll_s)
            anyio.run(session.run)
        finally:
            store.close()

    return work
