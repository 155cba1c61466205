"""The record of a run that a process of its own writes (`coach train`, `coach optimize`): shared writes.

Such a run is one `Run` row whose JSON `config` grows as the run goes, plus
`Event` rows of its progress. Training and optimisation keep the same record
the same way; the two writes they share live here once, and each of
`state.training_records` and `state.optimization_records` says only its kind
and its events.
"""

from __future__ import annotations

from typing import Any

from .errors import CoachError
from .models import Event, Run, utcnow
from .store import Store


def create_run(store: Store, run_id: str, kind: str, config: dict[str, Any], event: str, **payload: Any) -> None:
    """A new run of `kind`, running, with its start `event`, in one commit."""
    with store.session() as s:
        s.add(Run(id=run_id, kind=kind, status="running", config=config))
        s.flush()
        s.add(Event(run_id=run_id, kind=event, payload=payload))


def update_run(
    store: Store,
    run_id: str,
    *,
    status: str | None = None,
    event: str | None = None,
    missing: str = "no run {run_id!r} in the store",
    **config: Any,
) -> None:
    """Merge `config` into the run's record (top-level keys replaced), set its status and optionally log an
    event with that status, in one commit. `missing` is the message when the run is not there."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:  # pragma: no cover - callers hold an id they created
            raise CoachError(missing.format(run_id=run_id))
        if status:
            run.status = status
        if config:
            run.config = {**run.config, **config}
        run.updated_at = utcnow()
        s.add(run)
        if event:
            s.add(Event(run_id=run_id, kind=event, payload={"status": run.status}))
