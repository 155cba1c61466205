"""An optimisation's record in the store: the `Run` row (kind "optimize") and its events.

Every candidate prompt is stored once when first seen (`OptimizeCandidate`),
every scored conversation once per (candidate, persona) (`OptimizeRollout`:
score, failed criteria, the judge's feedback, the conversation), and the end
(`OptimizeFinished`: scores and the Pareto front). A resumed optimisation
reads its rollouts back instead of paying for them again. No table of its
own: these are events of a run, like a training's losses.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from .errors import CoachError
from .models import Event, Run, utcnow
from .store import Store

KIND = "optimize"


def create_run(store: Store, run_id: str, config: dict[str, Any]) -> None:
    with store.session() as s:
        s.add(Run(id=run_id, kind=KIND, status="running", config=config))
        s.flush()
        s.add(Event(run_id=run_id, kind="OptimizeStarted", payload={}))


def update_run(store: Store, run_id: str, *, status: str | None = None, **config: Any) -> None:
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:  # pragma: no cover - callers hold an id they created
            raise CoachError(f"no optimisation {run_id!r} in the store")
        if status:
            run.status = status
        if config:
            run.config = {**run.config, **config}
        run.updated_at = utcnow()
        s.add(run)


def add_event(store: Store, run_id: str, kind: str, payload: dict[str, Any]) -> None:
    with store.session() as s:
        s.add(Event(run_id=run_id, kind=kind, payload=payload))


def events(store: Store, run_id: str, kind: str) -> list[dict[str, Any]]:
    """The payloads of one kind of event of the run, oldest first."""
    with store.session() as s:
        rows = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == kind).order_by(Event.id)).all()
        return [dict(row.payload) for row in rows]


def optimization_runs(store: Store) -> list[Run]:
    """Every optimisation, newest first."""
    with store.session() as s:
        return list(s.exec(select(Run).where(Run.kind == KIND).order_by(Run.created_at.desc())).all())


def get_run(store: Store, ref: str = "latest") -> Run:
    runs = optimization_runs(store)
    if ref == "latest":
        if not runs:
            raise CoachError("no optimisation in this workspace yet: run `coach optimize` first")
        return runs[0]
    for run in runs:
        if run.id == ref:
            return run
    raise CoachError(f"no optimisation {ref!r} in this workspace")
