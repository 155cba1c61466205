"""Leases: one owner at a time for a run (and, later, for each transcript of a shared run).

Why a lease and not a status: a status says what a run *was* doing when
its last writer stopped; it cannot tell a live owner from a killed one. A
lease carries who holds it (owner id, host, pid), a heartbeat and an
expiry. Taking one is a single guarded statement, so two takers racing —
two shells, or the app and a shell — cannot both win, on SQLite or on
PostgreSQL:

- an ``UPDATE … WHERE scope = ? AND (expires_at < now OR owner = me)`` takes
  over an expired lease (or renews our own);
- otherwise an ``INSERT`` of the scope, the primary key, takes a free one;
  a second inserter gets an integrity error and is refused;
- a holder on this host whose process is gone is taken over at once with an
  ``UPDATE … WHERE owner = <that owner>`` (compare and swap), so a killed
  ``coach run`` does not lock its run until the expiry.

Times are the takers' clocks in UTC; hosts sharing a database are assumed
to keep their clocks within a small part of the lease's length.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .errors import CoachError
from .models import Lease
from .store import Store

DEFAULT_TTL_S = 90.0
"""How long a lease lives without a heartbeat: longer than a write may wait for a busy database."""


def run_scope(run_id: str) -> str:
    return f"run:{run_id}"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Owner:
    """This process as a lease holder: a fresh id per taker, with where it runs."""

    id: str
    host: str
    pid: int

    @classmethod
    def here(cls) -> Owner:
        return cls(id=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid())


@dataclass(frozen=True)
class Holder:
    """A lease as the store has it."""

    scope: str
    owner: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at < (now or now_utc())

    def gone(self) -> bool:
        """True when the holder ran on this host and its process no longer exists."""
        return self.gone_pid(self.host, self.pid)

    @staticmethod
    def gone_pid(host: str, pid: int) -> bool:
        return host == socket.gethostname() and not _pid_alive(pid)

    def live(self, now: datetime | None = None) -> bool:
        return not self.expired(now) and not self.gone()

    def describe(self) -> str:
        """ "host pid 123 since 13:02:11 UTC" — what a refused taker is told."""
        return f"{self.host} pid {self.pid} since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"


class LeaseHeld(CoachError):
    """Someone else holds the lease and it has not expired."""

    def __init__(self, holder: Holder, what: str | None = None) -> None:
        self.holder = holder
        what = what or holder.scope
        super().__init__(
            f"{what} is being worked on by another process ({holder.describe()}; last heartbeat "
            f"{holder.heartbeat_at:%H:%M:%S} UTC): stop it there first, or wait until its lease expires at "
            f"{holder.expires_at:%H:%M:%S} UTC"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _values(owner: Owner, now: datetime, ttl_s: float) -> dict:
    return {
        "owner": owner.id,
        "host": owner.host,
        "pid": owner.pid,
        "heartbeat_at": now,
        "expires_at": now + timedelta(seconds=ttl_s),
    }


def holder(store: Store, scope: str) -> Holder | None:
    """The lease on ``scope`` as stored (live or not), or None."""
    with store.transaction() as conn:
        row = conn.execute(select(Lease).where(Lease.scope == scope)).mappings().first()
    if row is None:
        return None
    return Holder(
        scope=row["scope"],
        owner=row["owner"],
        host=row["host"],
        pid=row["pid"],
        acquired_at=row["acquired_at"],
        heartbeat_at=row["heartbeat_at"],
        expires_at=row["expires_at"],
    )


def live_holder(store: Store, scope: str) -> Holder | None:
    """The holder of ``scope`` if its lease is live (not expired, its process not known to be gone)."""
    found = holder(store, scope)
    return found if found is not None and found.live() else None


def acquire(
    store: Store,
    scope: str,
    owner: Owner,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    run_id: str | None = None,
    what: str | None = None,
) -> Holder:
    """Take the lease on ``scope`` for ``owner``; raises `LeaseHeld` naming the live holder."""
    for _ in range(3):  # a holder may release or expire between our statements: look again
        now = now_utc()
        values = _values(owner, now, ttl_s)
        with store.transaction() as conn:
            taken = conn.execute(
                update(Lease)
                .where(Lease.scope == scope, or_(Lease.expires_at < now, Lease.owner == owner.id))
                .values(**values, acquired_at=case((Lease.owner == owner.id, Lease.acquired_at), else_=now))
            ).rowcount
        if taken == 1:
            return holder(store, scope)
        try:
            with store.transaction() as conn:
                conn.execute(insert(Lease).values(scope=scope, run_id=run_id, acquired_at=now, **values))
            return holder(store, scope)
        except IntegrityError:
            pass
        current = holder(store, scope)
        if current is None:
            continue
        if current.gone():
            with store.transaction() as conn:
                swapped = conn.execute(
                    update(Lease)
                    .where(Lease.scope == scope, Lease.owner == current.owner)
                    .values(**values, acquired_at=now)
                ).rowcount
            if swapped == 1:
                return holder(store, scope)
            continue
        raise LeaseHeld(current, what)
    current = holder(store, scope)
    if current is not None and current.owner == owner.id:
        return current
    raise LeaseHeld(current, what) if current is not None else CoachError(f"could not take the lease on {scope}")


def renew(store: Store, scope: str, owner: Owner, *, ttl_s: float = DEFAULT_TTL_S) -> bool:
    """The heartbeat: push our lease's expiry on. False when the lease is no longer ours."""
    now = now_utc()
    with store.transaction() as conn:
        done = conn.execute(
            update(Lease)
            .where(Lease.scope == scope, Lease.owner == owner.id)
            .values(heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s))
        ).rowcount
    return done == 1


def release(store: Store, scope: str, owner: Owner) -> None:
    """Give the lease back (only ours: a lease taken over meanwhile stays with its new holder)."""
    with store.transaction() as conn:
        conn.execute(delete(Lease).where(Lease.scope == scope, Lease.owner == owner.id))
