"""Claims: several workers on one run, one transcript to one worker at a time (SQLite here;
test_claims_postgres.py runs the same tests on PostgreSQL)."""

from __future__ import annotations

import threading
import time

from state import claims
from state import pipeline as db
from state.leases import Owner
from state.status import TranscriptStatus as S
from state.store import Store

RUN = "shared"


def shared_run(store: Store, n: int = 6) -> list[str]:
    ids = [f"t{i:02d}" for i in range(n)]
    db.create_run(
        store,
        RUN,
        kind="generate",
        domain="therapy",
        seed=1,
        config={},
        personas=[(f"p{i:02d}", i, {}) for i in range(n)],
        transcripts=[(tid, f"p{i:02d}", 2) for i, tid in enumerate(ids)],
    )
    return ids


def test_two_workers_claim_different_transcripts_until_none_is_free(store: Store):
    ids = shared_run(store, 4)
    a, b = Owner.here(), Owner("other", "elsewhere", 1)
    taken = [claims.claim_next(store, RUN, owner) for owner in (a, b, a, b)]
    assert sorted(taken) == ids
    assert claims.claim_next(store, RUN, a) is None and claims.claim_next(store, RUN, b) is None
    held = {w["owner"]: sorted(w["transcripts"]) for w in claims.workers(store, RUN)}
    assert held == {a.id: sorted(taken[0::2]), "other": sorted(taken[1::2])}


def test_done_and_excluded_transcripts_are_not_claimed_and_a_release_frees_one(store: Store):
    ids = shared_run(store, 3)
    db.set_status(store, RUN, ids[0], S.GENERATING)
    db.set_status(store, RUN, ids[2], S.GENERATING)
    db.set_status(store, RUN, ids[2], S.FAILED)  # a failed transcript waits for `coach run --resume`
    with store.session() as s:  # a terminal transcript: nothing left to do
        from state.models import Transcript

        t = s.get(Transcript, ids[1])
        t.status = S.PASSED
        s.add(t)
    me = Owner.here()
    assert claims.claim_next(store, RUN, me) == ids[0]
    assert claims.claim_next(store, RUN, me) is None
    claims.release_claim(store, ids[0], me)
    assert claims.claim_next(store, RUN, me, exclude={ids[0]}) is None  # done here this pass
    assert claims.claim_next(store, RUN, me) == ids[0]


def test_a_dead_workers_claims_expire_and_are_taken_over(store: Store):
    ids = shared_run(store, 1)
    dead, alive = Owner("dead", "another-host", 4242), Owner.here()
    assert claims.claim_next(store, RUN, dead, ttl_s=0.2) == ids[0]
    assert claims.claim_next(store, RUN, alive) is None  # live: refused
    time.sleep(0.3)
    assert claims.claim_next(store, RUN, alive) == ids[0]  # expired: taken over
    assert claims.heartbeat(store, [ids[0]], dead) == [ids[0]]  # the late heartbeat learns it lost the claim
    assert claims.heartbeat(store, [ids[0]], alive) == []


def test_workers_claiming_at_once_never_share_a_transcript(store: Store):
    ids = shared_run(store, 12)
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        owner = Owner(name, "host", 1)
        mine = got.setdefault(name, [])
        try:
            while (tid := claims.claim_next(store, RUN, owner)) is not None:
                mine.append(tid)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    taken = [tid for mine in got.values() for tid in mine]
    assert sorted(taken) == ids  # every transcript once, none twice
