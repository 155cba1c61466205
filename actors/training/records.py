"""What a training run's record means: which run to resume, which to export, which exports exist.

The record itself lives in the store (`state.training_records`): one `Run`
row (kind "train") per run, `Event` rows for its progress.

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

from state import pipeline as db
from state import run_index, training_records
from state.errors import CoachError
from state.models import Run
from state.store import Store

PROGRESS = "TrainingProgress"
EVAL = "TrainingEval"


def new_run_id() -> str:
    return f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def loss_history(store: Store, run_id: str, split: str = "train") -> list[tuple[int, float]]:
    """Every logged (step, loss) of a run, across resumes (the last value wins for a repeated step).

    `split` "train" gives the training loss of each logged step, "validation" the held-out
    conversations' loss of each eval step (empty when the run has no validation split).
    """
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', not {split!r}")
    kind, key = (PROGRESS, "loss") if split == "train" else (EVAL, "eval_loss")
    events = run_index.run_events(store, run_id, kind)
    by_step = {int(e.payload["step"]): float(e.payload[key]) for e in events if key in e.payload}
    return sorted(by_step.items())


def get_train_run(store: Store, ref: str = "latest") -> Run:
    """A training run by id, or the latest one (`latest`); CoachError when there is none."""
    if ref == "latest":
        run = db.latest_run(store, training_records.KIND)
        if run is None:
            raise CoachError("no training run in this workspace yet: run coach train first")
        return run
    run = db.get_run(store, ref)
    if run is None or run.kind != training_records.KIND:
        raise CoachError(
            f"no training run {ref!r} in this workspace (coach export-model takes a run id from coach train)"
        )
    return run


def find_resumable(
    store: Store, *, data_sha256: str, preset: str, model: str, run_dir: Path | None, method: str = "sft"
) -> Run | None:
    """The latest unfinished training run of the same data, preset, model and method (or in `run_dir`).

    A run recorded before methods existed was an SFT run.
    """
    for run in training_records.resumable_runs(store):
        cfg = run.config
        if run_dir is not None:
            if Path(cfg.get("paths", {}).get("run_dir", "")) == run_dir:
                return run
            continue
        if (
            cfg.get("data", {}).get("sha256") == data_sha256
            and cfg.get("recipe", {}).get("preset") == preset
            and cfg.get("recipe", {}).get("model") == model
            and (cfg.get("recipe", {}).get("method") or "sft") == method
        ):
            return run
    return None


def exported_models(store: Store) -> list[dict[str, Any]]:
    """Every exported GGUF, newest first: what the chat screen and an eval_target backend can select."""
    out = []
    for run in training_records.training_runs(store):
        export = run.config.get("export")
        if export and export.get("gguf") and Path(export["gguf"]).is_file():
            out.append({"run_id": run.id, "preset": run.config.get("recipe", {}).get("preset"), **export})
    return out
