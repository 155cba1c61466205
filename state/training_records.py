"""The training runs' records in the store: the `Run` row (kind "train") and the `Event` rows of its progress.

Why a module of its own: a training run is written by a process of its own
(`coach train`), not by the pipeline's steps, and its record is one JSON
`config` that grows as the run goes (data, recipe, metrics, paths, the
export). These are the writes that record keeps, each one transaction, and
the two reads that pick runs by kind and status. What the record means —
which run to resume, which export exists on disk — is decided in
`actors.training.records`, from the rows these return.

The losses and checkpoints a run logged are ordinary events of its run,
read through `state.run_index.run_events`.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from . import process_runs
from .models import Event, Run
from .store import Store

KIND = "train"
"""The `Run.kind` of a training run."""
RESUMABLE = ("running", "interrupted", "failed")
"""Statuses of a training run that a new `coach train` of the same data may carry on."""


def create_run(store: Store, run_id: str, config: dict[str, Any]) -> None:
    """A new training run, running, with its `TrainingStarted` event, in one commit."""
    process_runs.create_run(store, run_id, KIND, config, "TrainingStarted", resumed=False)


def update_run(
    store: Store, run_id: str, *, status: str | None = None, event: str | None = None, **config: Any
) -> None:
    """Merge `config` into the run's record (top-level keys replaced) and optionally log an event, in one commit."""
    process_runs.update_run(store, run_id, status=status, event=event, **config)


def add_event(store: Store, run_id: str | None, kind: str, **payload: Any) -> None:
    with store.session() as s:
        s.add(Event(run_id=run_id, kind=kind, payload=payload))


def resumable_runs(store: Store) -> list[Run]:
    """Training runs not yet finished (`RESUMABLE`), newest first."""
    with store.session() as s:
        return list(
            s.exec(select(Run).where(Run.kind == KIND, Run.status.in_(RESUMABLE)).order_by(Run.created_at.desc())).all()
        )


def training_runs(store: Store) -> list[Run]:
    """Every training run, newest first."""
    with store.session() as s:
        return list(s.exec(select(Run).where(Run.kind == KIND).order_by(Run.created_at.desc())).all())
