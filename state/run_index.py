"""Listing runs and reading their logged events: what the screens that follow runs ask the store.

Evaluations and trainings usually run in another process; the app knows them
only through their run rows and the `Event` rows each step commits. These
reads are all such a screen needs, each one query (or two), so a list of a
few hundred runs stays cheap to redraw.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from .models import Event, Run
from .store import Store


def recent_runs(store: Store, kind: str, limit: int = 200) -> list[Run]:
    """Runs of one kind (generate | eval | train), newest first."""
    with store.session() as s:
        return list(s.exec(select(Run).where(Run.kind == kind).order_by(Run.created_at.desc()).limit(limit)).all())


def latest_payloads(store: Store, run_ids: list[str], kind: str) -> dict[str, dict[str, Any]]:
    """Per run, the payload of its latest event of `kind` (runs without one are left out)."""
    if not run_ids:
        return {}
    with store.session() as s:
        latest_ids = s.exec(
            select(func.max(Event.id)).where(Event.kind == kind, Event.run_id.in_(run_ids)).group_by(Event.run_id)
        ).all()
        return {e.run_id: e.payload for e in s.exec(select(Event).where(Event.id.in_(latest_ids))).all()}


def latest_event(store: Store, run_id: str, kind: str) -> Event | None:
    with store.session() as s:
        return s.exec(select(Event).where(Event.run_id == run_id, Event.kind == kind).order_by(Event.id.desc())).first()


def run_events(store: Store, run_id: str, kind: str) -> list[Event]:
    """A run's events of one kind, oldest first."""
    with store.session() as s:
        return list(s.exec(select(Event).where(Event.run_id == run_id, Event.kind == kind).order_by(Event.id)).all())


RunMarker = tuple[str | None, str | None, int | None]
"""(status, updated_at, last event id): equal markers mean nothing changed."""


def run_marker(store: Store, run_id: str) -> RunMarker:
    """Has a run moved since we last looked? One cheap question a screen can ask every couple of seconds.

    Every step of an evaluation or a training commits an `Event` row for its
    run, and the run row's status and `updated_at` change at its start and
    end: together they change exactly when something worth redrawing
    happened, and reading them costs one indexed lookup instead of
    recomputing a report.
    """
    with store.session() as s:
        run = s.get(Run, run_id)
        last_event = s.exec(select(func.max(Event.id)).where(Event.run_id == run_id)).one()
    if run is None:
        return (None, None, last_event)
    return (run.status, run.updated_at.isoformat(), last_event)
