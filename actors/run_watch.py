"""Has a run moved since we last looked? One cheap question a screen can ask every couple of seconds.

Evaluations and trainings usually run in another process (`coach eval`,
`coach train`), so the app learns about them only from the store. Every
step of either commits an `Event` row for its run, and the run row's status
and `updated_at` change at its start and end: together they change exactly
when something worth redrawing happened, and reading them costs one indexed
lookup instead of recomputing a report.
"""

from __future__ import annotations

from sqlmodel import func, select

from state.models import Event, Run
from state.store import Store

RunMarker = tuple[str | None, str | None, int | None]
"""(status, updated_at, last event id): equal markers mean nothing changed."""


def run_marker(store: Store, run_id: str) -> RunMarker:
    with store.session() as s:
        run = s.get(Run, run_id)
        last_event = s.exec(select(func.max(Event.id)).where(Event.run_id == run_id)).one()
    if run is None:
        return (None, None, last_event)
    return (run.status, run.updated_at.isoformat(), last_event)
