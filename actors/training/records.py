"""Training runs in the store: one `Run` row (kind "train") per run, `Event` rows for its progress.

The row's JSON `config` is the run's record: the data file's sha256 and
length report, the preset and the recipe actually used on this machine, the
package versions, the base model, the output paths, the final metrics and,
after `coach export-model`, the exported files. The chat screen and the
`eval_target` backend find exported models here (`exported_models`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from state.errors import CoachError
from state.models import Event, Run, utcnow
from state.store import Store

KIND = "train"
RESUMABLE = ("running", "interrupted", "failed")


def new_run_id() -> str:
    return f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run(store: Store, run_id: str, config: dict[str, Any]) -> None:
    with store.session() as s:
        s.add(Run(id=run_id, kind=KIND, status="running", config=config))
        s.flush()
        s.add(Event(run_id=run_id, kind="TrainingStarted", payload={"resumed": False}))


def update_run(
    store: Store, run_id: str, *, status: str | None = None, event: str | None = None, **config: Any
) -> None:
    """Merge `config` into the run's record (top-level keys replaced) and optionally log an event, in one commit."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:  # pragma: no cover - callers hold an id they created
            raise CoachError(f"no run {run_id!r} in the store")
        if status:
            run.status = status
        if config:
            run.config = {**run.config, **config}
        run.updated_at = utcnow()
        s.add(run)
        if event:
            s.add(Event(run_id=run_id, kind=event, payload={"status": run.status}))


def add_event(store: Store, run_id: str | None, kind: str, **payload: Any) -> None:
    with store.session() as s:
        s.add(Event(run_id=run_id, kind=kind, payload=payload))


def loss_history(store: Store, run_id: str) -> list[tuple[int, float]]:
    """Every logged (step, loss) of a run, across resumes (the last value wins for a repeated step)."""
    with store.session() as s:
        events = s.exec(
            select(Event).where(Event.run_id == run_id, Event.kind == "TrainingProgress").order_by(Event.id)
        ).all()
    by_step = {int(e.payload["step"]): float(e.payload["loss"]) for e in events if "loss" in e.payload}
    return sorted(by_step.items())


def get_train_run(store: Store, ref: str = "latest") -> Run:
    """A training run by id, or the latest one (`latest`); CoachError when there is none."""
    with store.session() as s:
        if ref == "latest":
            run = s.exec(select(Run).where(Run.kind == KIND).order_by(Run.created_at.desc())).first()
            if run is None:
                raise CoachError("no training run in this workspace yet: run coach train first")
            return run
        run = s.get(Run, ref)
    if run is None or run.kind != KIND:
        raise CoachError(
            f"no training run {ref!r} in this workspace (coach export-model takes a run id from coach train)"
        )
    return run


def find_resumable(store: Store, *, data_sha256: str, preset: str, model: str, run_dir: Path | None) -> Run | None:
    """The latest unfinished training run of the same data, preset and model (or in `run_dir`)."""
    with store.session() as s:
        runs = s.exec(
            select(Run).where(Run.kind == KIND, Run.status.in_(RESUMABLE)).order_by(Run.created_at.desc())
        ).all()
    for run in runs:
        cfg = run.config
        if run_dir is not None:
            if Path(cfg.get("paths", {}).get("run_dir", "")) == run_dir:
                return run
            continue
        if (
            cfg.get("data", {}).get("sha256") == data_sha256
            and cfg.get("recipe", {}).get("preset") == preset
            and cfg.get("recipe", {}).get("model") == model
        ):
            return run
    return None


def exported_models(store: Store) -> list[dict[str, Any]]:
    """Every exported GGUF, newest first: what the chat screen and an eval_target backend can select."""
    with store.session() as s:
        runs = s.exec(select(Run).where(Run.kind == KIND).order_by(Run.created_at.desc())).all()
    out = []
    for run in runs:
        export = run.config.get("export")
        if export and export.get("gguf") and Path(export["gguf"]).is_file():
            out.append({"run_id": run.id, "preset": run.config.get("recipe", {}).get("preset"), **export})
    return out
