"""A training run as the app shows it, read back from the store alone.

`coach train` usually runs in another process; everything the train screen
draws is what that process committed: the run row's config (preset, recipe,
final metrics, paths, the export) and its events (`TrainingProgress` per
logged step, `TrainingCheckpoint` per save). Missing keys mean "not yet",
never an error: a run that has just started has no progress and no metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from state import pipeline as db
from state import run_index, training_data, training_records
from state.models import Run, TrainingExample
from state.run_index import RunMarker, run_marker
from state.store import Store

from . import records

PROGRESS = "TrainingProgress"
CHECKPOINT = "TrainingCheckpoint"


@dataclass(frozen=True)
class TrainRunInfo:
    """One row of the runs list."""

    id: str
    preset: str
    status: str
    step: int | None
    max_steps: int | None
    last_loss: float | None
    created_at: datetime


@dataclass
class TrainingSnapshot:
    info: TrainRunInfo
    marker: RunMarker
    model: str | None
    device: str | None
    losses: list[tuple[int, float]]
    progress: dict[str, Any]  # the latest TrainingProgress payload: step, max_steps, loss, lr, tokens_per_s, eta_s…
    checkpoints: list[tuple[int, str]]
    metrics: dict[str, Any]
    paths: dict[str, Any]
    export: dict[str, Any]
    error: str | None
    data_path: str | None
    base_model: str | None  # the bundled name to compare against, when the base is a bundled model
    notes: list[str] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss) per eval step

    @property
    def live(self) -> bool:
        return self.info.status == "running"

    @property
    def next_command(self) -> str:
        """What to run next: evaluate an export, export a finished run, or continue an unfinished one."""
        if self.eval_command:
            return self.eval_command
        if self.info.status == "finished":
            return self.export_command
        return self.resume_command

    @property
    def resume_command(self) -> str:
        data = self.data_path or "DATA.jsonl"
        return f"coach train --data {data} --preset {self.info.preset} --resume"

    @property
    def export_command(self) -> str:
        return f"coach export-model {self.info.id}"

    @property
    def eval_command(self) -> str | None:
        gguf = self.export.get("gguf")
        if not gguf:
            return None
        return f"coach eval compare --base {self.base_model or 'BASE'} --candidate {gguf}"


def _cfg(run: Run) -> dict[str, Any]:
    return run.config if isinstance(run.config, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _info(run: Run, last: dict[str, Any]) -> TrainRunInfo:
    cfg = _cfg(run)
    recipe, metrics = _dict(cfg.get("recipe")), _dict(cfg.get("metrics"))
    # The latest event first: a resumed run is running again under the metrics of its earlier session.
    step = last.get("step", metrics.get("global_step"))
    max_steps = last.get("max_steps", metrics.get("max_steps", recipe.get("max_steps")))
    return TrainRunInfo(
        id=run.id,
        preset=str(cfg.get("preset") or recipe.get("preset") or "?"),
        status=run.status,
        step=step if isinstance(step, int) else None,
        max_steps=max_steps if isinstance(max_steps, int) and max_steps > 0 else None,
        last_loss=_number(last.get("loss", metrics.get("last_loss"))),
        created_at=run.created_at,
    )


def training_runs(store: Store, limit: int = 200) -> list[TrainRunInfo]:
    """Every training run, newest first, with its latest logged step (one query for all of them)."""
    runs = run_index.recent_runs(store, training_records.KIND, limit)
    latest = run_index.latest_payloads(store, [r.id for r in runs], PROGRESS)
    return [_info(r, _dict(latest.get(r.id))) for r in runs]


def training_snapshot(store: Store, run_id: str) -> TrainingSnapshot | None:
    """Everything the store knows about one training run (None when there is no such run)."""
    marker = run_marker(store, run_id)  # before reading: a change while we read shows at the next look
    run = db.get_run(store, run_id)
    if run is None or run.kind != training_records.KIND:
        return None
    last = run_index.latest_event(store, run_id, PROGRESS)
    saved = run_index.run_events(store, run_id, CHECKPOINT)
    progress = _dict(last.payload) if last else {}
    checkpoints = {int(e.payload["step"]): str(e.payload.get("path", "")) for e in saved if "step" in e.payload}
    cfg = _cfg(run)
    recipe, base = _dict(cfg.get("recipe")), _dict(cfg.get("base_model"))
    reference = str(base.get("reference") or recipe.get("model") or "")
    return TrainingSnapshot(
        info=_info(run, progress),
        marker=marker,
        model=reference or None,
        device=recipe.get("device"),
        losses=records.loss_history(store, run_id),
        progress=progress,
        checkpoints=sorted(checkpoints.items()),
        metrics=_dict(cfg.get("metrics")),
        paths=_dict(cfg.get("paths")),
        export=_dict(cfg.get("export")),
        error=cfg.get("error"),
        data_path=_dict(cfg.get("data")).get("path"),
        base_model=reference.removeprefix("bundled:") if reference.startswith("bundled:") else None,
        notes=[str(n) for n in recipe.get("notes") or []],
        val_losses=records.loss_history(store, run_id, split="validation"),
    )


def training_data_ready(store: Store) -> tuple[int, int]:
    """(passed transcripts, sliced training examples): what a first training run would start from."""
    return training_data.passed_transcript_count(store), store.count(TrainingExample)


def existing(path: str | None) -> Path | None:
    """The path when it is still on disk (an exported file may have been moved or deleted since)."""
    return Path(path) if path and Path(path).exists() else None
