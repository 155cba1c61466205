"""Claims: several workers on one run, each transcript worked by one of them at a time.

A claim is a lease (`state.leases`) on the scope ``transcript:<id>``, with the
run's id beside it: who holds it, a heartbeat, an expiry. A worker claims the
next unfinished transcript nobody live holds, heartbeats its claims while it
works, and releases each when the transcript is done for this pass. A worker
that dies stops heartbeating; once its claims expire (or at once, on its own
host, when its process is gone) another worker takes them over. The step keys
(`state.steps`) make the taken-over transcript go on without repeating what
the dead worker committed.

Taking a claim is atomic on both stores: on PostgreSQL the candidate rows are
read ``FOR UPDATE SKIP LOCKED``, so two workers claiming at once pass over each
other's rows instead of waiting; on SQLite, one writer at a time, the lease's
primary key refuses a second taker.

Each worker also holds a worker row (``worker:<run>:<owner>``) for as long as
it is on the run, heartbeated with its claims. It says who is on the run even
while they hold nothing (waiting for the last transcripts), and is left behind,
expired, when the worker leaves: a run's worker rows count who worked it.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from .leases import DEFAULT_TTL_S, Holder, LeaseHeld, Owner, _values, acquire, now_utc, release, renew
from .models import Lease, Transcript
from .status import DONE_FOR_NOW
from .status import TranscriptStatus as S
from .store import Store

CLAIMABLE = (S.PLANNED, S.GENERATING, S.CURATING, S.ASSESSING, S.FIXING)
"""Statuses a worker may take up. A `failed` one is not: several workers would each retry it; a
`coach run --resume` retries a shared run's failures, once."""


def transcript_scope(transcript_id: str) -> str:
    return f"transcript:{transcript_id}"


def claim_next(
    store: Store,
    run_id: str,
    owner: Owner,
    *,
    exclude: Collection[str] = (),
    ttl_s: float = DEFAULT_TTL_S,
    batch: int = 0,
) -> str | None:
    """One unfinished transcript of the run, now claimed by ``owner``; None when nothing is free.

    Free: no claim, an expired one, or one whose holder ran on this host and is gone. ``batch``:
    candidates read (and, on PostgreSQL, locked) beyond the one taken; see `claim_many`.
    """
    taken = claim_many(store, run_id, owner, 1, exclude=exclude, ttl_s=ttl_s, batch=batch)
    return taken[0] if taken else None


def claim_many(
    store: Store,
    run_id: str,
    owner: Owner,
    n: int,
    *,
    exclude: Collection[str] = (),
    ttl_s: float = DEFAULT_TTL_S,
    release: Collection[str] = (),
    batch: int = 0,
) -> list[str]:
    """Up to ``n`` unfinished transcripts of the run, now claimed by ``owner`` (fewer when fewer are free).

    Why several at once: a worker with several free slots (at its start, or when a few of its
    transcripts end together) took one claim per transaction, each a round trip or three, while its
    slots stood empty. Here the free ones are claimed in one transaction, and the claims in
    ``release`` (transcripts this worker is done with) are given back in the same one. Only a
    transcript whose claim row must be taken over (expired, or its holder gone) costs more.

    On PostgreSQL the candidates are locked (``FOR UPDATE SKIP LOCKED``) until the claims are in, and
    a claimer meanwhile passes over them: so only ``n`` (+ ``batch``) are read, with ``exclude`` left
    out by the query itself. Reading ``16 + len(exclude)`` rows to take one, as this did, locked every
    free transcript of a run's last stretch (and, once a worker had done many, of any run), and a
    worker claiming at that instant found nothing and slept a poll with its slots empty.
    """
    now = now_utc()
    live = select(Lease.scope).where(Lease.run_id == run_id, Lease.expires_at >= now)
    query = (
        select(Transcript.id)
        .where(
            Transcript.run_id == run_id,
            Transcript.status.in_([s.value for s in CLAIMABLE]),
            (literal("transcript:") + Transcript.id).not_in(live),
            *([Transcript.id.not_in(list(exclude))] if exclude else []),
        )
        .order_by(Transcript.id)
        .limit(max(n, 1) + batch)
    )
    postgres = store.engine.dialect.name == "postgresql"
    taken: list[str] = []
    candidates: list[str] = []
    orphans: list[str] = []
    try:
        with store.transaction() as conn:
            if release:
                conn.execute(
                    delete(Lease).where(
                        Lease.scope.in_([transcript_scope(t) for t in release]), Lease.owner == owner.id
                    )
                )
            if n <= 0:
                return []
            if postgres:  # pass over rows another claimer has locked this instant, instead of waiting for it
                query = query.with_for_update(skip_locked=True)
            candidates = [tid for tid in conn.execute(query).scalars() if tid not in exclude]
            orphans = [
                scope.removeprefix("transcript:")
                for scope, host, pid in conn.execute(
                    select(Lease.scope, Lease.host, Lease.pid).where(
                        Lease.run_id == run_id,
                        Lease.expires_at >= now,
                        Lease.owner != owner.id,
                        Lease.host == owner.host,
                    )
                )
                if scope.startswith("transcript:") and Holder.gone_pid(host, pid)
            ]
            if candidates:
                # On PostgreSQL the row locks are ours until this transaction ends: the claims go in inside
                # it. On SQLite a taker in between makes the insert fail, and the one-by-one way below
                # decides. A claim row left from an expired lease is replaced through `acquire` instead.
                scopes = set(
                    conn.execute(
                        select(Lease.scope).where(Lease.scope.in_([transcript_scope(t) for t in candidates]))
                    ).scalars()
                )
                free = [tid for tid in candidates if transcript_scope(tid) not in scopes][:n]
                if free:
                    conn.execute(
                        insert(Lease),
                        [
                            {"scope": transcript_scope(tid), "run_id": run_id, "acquired_at": now}
                            | _values(owner, now, ttl_s)
                            for tid in free
                        ],
                    )
                    taken = free
    except IntegrityError:  # SQLite: another worker claimed one of them meanwhile (the releases went back too)
        if release:
            with store.transaction() as conn:
                conn.execute(
                    delete(Lease).where(
                        Lease.scope.in_([transcript_scope(t) for t in release]), Lease.owner == owner.id
                    )
                )
        taken = []
    for tid in [*candidates, *(o for o in orphans if o not in exclude)]:
        if len(taken) >= n:
            break
        if tid in taken:
            continue
        try:
            acquire(store, transcript_scope(tid), owner, ttl_s=ttl_s, run_id=run_id)
            taken.append(tid)
        except LeaseHeld:
            continue
    return taken


def unfinished(store: Store, run_id: str) -> int:
    """How many transcripts of the run some worker still has work for (one count, however big the run)."""
    with store.transaction() as conn:
        return conn.execute(
            select(func.count())
            .select_from(Transcript)
            .where(Transcript.run_id == run_id, Transcript.status.not_in([s.value for s in DONE_FOR_NOW]))
        ).scalar_one()


def heartbeat(
    store: Store, transcript_ids: Collection[str], owner: Owner, *, ttl_s: float = DEFAULT_TTL_S
) -> list[str]:
    """Renew our claims; the ids of those no longer ours (taken over after we stalled)."""
    return [tid for tid in transcript_ids if not renew(store, transcript_scope(tid), owner, ttl_s=ttl_s)]


def release_claim(store: Store, transcript_id: str, owner: Owner) -> None:
    release(store, transcript_scope(transcript_id), owner)


def workers(store: Store, run_id: str, *, joined: bool = False) -> list[dict]:
    """Who holds which transcripts of the run now: one row per worker (host, pid, claims, live).

    With ``joined``, workers on the run that hold nothing (their worker row alone) are listed too,
    and so are those that have left (``live`` False): everyone who worked the run.
    """
    now = now_utc()
    with store.transaction() as conn:
        rows = conn.execute(
            select(Lease.owner, Lease.host, Lease.pid, Lease.scope, Lease.expires_at).where(
                Lease.run_id == run_id,
                Lease.scope.like("transcript:%") | Lease.scope.like(f"{_worker_prefix(run_id)}%"),
            )
        ).all()
    by_owner: dict[str, dict] = {}
    for owner, host, pid, scope, expires in rows:
        entry = by_owner.setdefault(
            owner, {"owner": owner, "host": host, "pid": pid, "transcripts": [], "expires_at": expires}
        )
        if scope.startswith("transcript:"):
            entry["transcripts"].append(scope.removeprefix("transcript:"))
        else:
            entry["joined"] = True
        entry["expires_at"] = max(entry["expires_at"], expires)
    found = []
    for entry in by_owner.values():
        entry["live"] = _aware(entry["expires_at"]) >= now and not Holder.gone_pid(entry["host"], entry["pid"])
        if not entry["transcripts"] and not (joined and entry.pop("joined", False)):
            continue
        entry.pop("joined", None)
        entry["transcripts"].sort()
        found.append(entry)
    return sorted(found, key=lambda w: (w["host"], w["pid"], w["owner"]))


# --- worker rows: who is on a run -----------------------------------------------------------------


def _worker_prefix(run_id: str) -> str:
    return f"worker:{run_id}:"


def worker_scope(run_id: str, owner: Owner) -> str:
    return f"{_worker_prefix(run_id)}{owner.id}"


def join(store: Store, run_id: str, owner: Owner, *, ttl_s: float = DEFAULT_TTL_S) -> None:
    """Put ``owner`` on the run (its worker row), before it claims anything."""
    acquire(store, worker_scope(run_id, owner), owner, ttl_s=ttl_s, run_id=run_id)


def beat(store: Store, run_id: str, owner: Owner, *, ttl_s: float = DEFAULT_TTL_S) -> None:
    """Keep the worker row live (its claims are renewed by `heartbeat`)."""
    renew(store, worker_scope(run_id, owner), owner, ttl_s=ttl_s)


def leave(store: Store, run_id: str, owner: Owner) -> None:
    """Off the run: every claim still held goes back at once, and the worker row stays, expired, as a record."""
    now = now_utc()
    with store.transaction() as conn:
        conn.execute(
            delete(Lease).where(Lease.run_id == run_id, Lease.owner == owner.id, Lease.scope.like("transcript:%"))
        )
        conn.execute(
            update(Lease)
            .where(Lease.scope == worker_scope(run_id, owner), Lease.owner == owner.id)
            .values(heartbeat_at=now, expires_at=now)
        )


def others_live(store: Store, run_id: str, owner: Owner) -> int:
    """How many other workers are live on the run now (a worker row or a claim, not expired, not gone)."""
    return sum(1 for w in workers(store, run_id, joined=True) if w["live"] and w["owner"] != owner.id)


def _aware(moment):
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=now_utc().tzinfo)
