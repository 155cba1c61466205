"""An optimisation's record in the store: the `Run` row (kind "optimize") and its events.

Every candidate prompt is stored once when first seen (`OptimizeCandidate`),
every scored conversation once per (candidate, persona) (`OptimizeRollout`:
score, failed criteria, the judge's feedback, the conversation), and the end
(`OptimizeFinished`: scores and the Pareto front). A resumed optimisation
reads its rollouts back instead of paying for them again. No table of its
own: these are events of a run, like a training's losses. The run row is
written as a training's is (`state.process_runs`); the reads here are what
`actors.optimization.progress` needs to show an optimisation while it runs.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from . import process_runs
from .errors import CoachError
from .models import Event, Run
from .store import Store

KIND = "optimize"


def create_run(store: Store, run_id: str, config: dict[str, Any]) -> None:
    """A new optimisation, running, with its `OptimizeStarted` event, in one commit."""
    process_runs.create_run(store, run_id, KIND, config, "OptimizeStarted")


def update_run(store: Store, run_id: str, *, status: str | None = None, **config: Any) -> None:
    """Merge `config` into the run's record (top-level keys replaced) and set its status, in one commit."""
    process_runs.update_run(store, run_id, status=status, missing="no optimisation {run_id!r} in the store", **config)


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


def event_counts(store: Store, run_ids: list[str], kind: str) -> dict[str, int]:
    """Per run, how many events of `kind` it has (runs without any are left out): one query for a whole list."""
    if not run_ids:
        return {}
    with store.session() as s:
        rows = s.exec(
            select(Event.run_id, func.count(Event.id))
            .where(Event.kind == kind, Event.run_id.in_(run_ids))
            .group_by(Event.run_id)
        ).all()
        return {run_id: count for run_id, count in rows}


def find_run(store: Store, run_id: str) -> Run | None:
    """The optimisation of that id, or None."""
    with store.session() as s:
        run = s.get(Run, run_id)
        return run if run is not None and run.kind == KIND else None


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
