"""Training: fine-tune on sliced examples, and follow a training run from the store.

`coach train` starts one (`plan_training_run`, then `Training.run`); the
Train screen follows any, usually one another process is running, through
`training_runs` and `training_snapshot`, which read only what that process
committed. A stop finishes the step in flight and saves a checkpoint, so a
resumed run loses nothing.
"""

from __future__ import annotations

from pathlib import Path

from actors.events import EventBus
from actors.training.data import read_examples
from actors.training.models import calm_cpu_threads, require_training_stack
from actors.training.recipe import TrainPlan, TrainRequest, plan_training
from actors.training.snapshot import (
    TrainingSnapshot,
    TrainRunInfo,
    existing,
    training_data_ready,
    training_runs,
    training_snapshot,
)
from actors.training.trainer import TrainerActor, TrainResult
from state.errors import CoachError
from state.run_index import RunMarker, run_marker
from state.store import Store

from .relay import OnEvent, relaying

__all__ = [
    "RunMarker",
    "TrainPlan",
    "TrainRequest",
    "TrainResult",
    "TrainRunInfo",
    "Training",
    "TrainingSnapshot",
    "check_training_request",
    "existing",
    "plan_training_run",
    "resolve_adapter",
    "run_marker",
    "training_data_ready",
    "training_runs",
    "training_snapshot",
]


def check_training_request(request: TrainRequest, pack=None) -> int:
    """The training data, read before anything heavy loads; returns the number of training examples.

    Every line of the data is checked as training will read it (a missing file,
    a line that is not JSON, a conversation without an assistant turn), so a
    mistake is told in a second rather than after the base model has loaded.
    The method decides what a line must be: an example (sft), a preference
    pair (dpo), or either, for its prompt (grpo). For grpo with `pack`, the
    reward's criteria are checked against the pack's rubric too.
    """
    if request.method == "dpo":
        from actors.training.dpo import read_pairs

        return len(read_pairs(request.data))
    if request.method == "grpo":
        from actors.training.grpo import read_prompts
        from actors.training.rubric_reward import reward_criteria

        if pack is not None:
            reward_criteria(pack.rubric, request.reward_criteria)
        return len(read_prompts(request.data))
    return len(read_examples(request.data))


def resolve_adapter(store: Store, ref: str) -> Path:
    """`--from-adapter`: an adapter folder, or the id of a finished training run (its adapter); CoachError if neither."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise CoachError(f"--from-adapter {ref}: no adapter_config.json in that folder (not a LoRA adapter)")
        return path.resolve()
    from actors.training import records

    try:
        run = records.get_train_run(store, ref)
    except CoachError:
        raise CoachError(
            f"--from-adapter {ref}: neither an adapter folder nor a training run of this workspace"
        ) from None
    adapter = (run.config.get("paths") or {}).get("adapter")
    if not adapter or not (Path(adapter) / "adapter_config.json").is_file():
        raise CoachError(f"--from-adapter {ref}: run {run.id} has no trained adapter (status {run.status})")
    return Path(adapter)


def plan_training_run(request: TrainRequest) -> TrainPlan:
    """What this run will really do on this machine, decided before anything heavy loads.

    Raises CoachError for what cannot run (the training extra missing, 4-bit
    without CUDA unless allowed, a bad preset).
    """
    calm_cpu_threads()
    require_training_stack()
    return plan_training(request)


class Training:
    """One training run of a plan: its events go to `on_event`, `stop()` ends it after the current step."""

    def __init__(self, store: Store, workspace: Path, plan: TrainPlan, on_event: OnEvent | None = None) -> None:
        self.plan = plan
        self.on_event = on_event
        self._bus = EventBus()
        self._actor = TrainerActor(store, self._bus, runs_root=Path(workspace) / "train")

    @property
    def stopping(self) -> bool:
        return self._actor.stop_requested.is_set()

    def stop(self) -> None:
        """Finish the current step, save a checkpoint and end the run as `interrupted` (resumable)."""
        self._actor.stop()

    async def run(self) -> TrainResult:
        return await relaying(self._bus, self.on_event, lambda: self._actor.run(self.plan))
