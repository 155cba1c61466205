"""The trainer actor: one TRL trainer per run, driven from a worker thread, reporting through events.

The method (`--method`) picks the trainer and the data it reads: `SFTTrainer`
on `messages` examples (here), `DPOTrainer` on preference pairs
(`actors.training.dpo`), `GRPOTrainer` with the rubric reward on prompts
(`actors.training.grpo`). Everything else — the plan, the run record,
checkpoints and --resume, progress events, the saved adapter that
`coach export-model` merges — is the same for all three.

Flow of a run (`TrainerActor.run`):

1. plan (fast, on the event loop): preset + options + this machine; refuses
   4-bit without CUDA unless allowed;
2. in a worker thread (`anyio.to_thread`), so the TUI stays responsive:
   resolve the base model (bundled GGUF → cached checkpoint, local folder,
   or hub cache), load its tokenizer, tokenize and mask the data and apply
   the over-length policy — all before a run record exists, so a refused
   run leaves nothing behind;
3. create (or, with --resume, reopen) the `Run` row, then hand TRL one
   `SFTConfig`, one `LoraConfig` and, for QLoRA, one `BitsAndBytesConfig`;
   `SFTTrainer` loads the model, wraps it with PEFT and trains;
4. a `TrainerCallback` turns the trainer's logs into `TrainingProgress`
   events (step, loss, learning rate, tokens/s, ETA), stored as Event rows
   and published on the EventBus; checkpoints land every `save_steps`, and
   `--resume` continues from the last one after a kill;
5. the adapter (with the tokenizer and its chat template) is saved and the
   run record gets the metrics and paths.

A stop request (Ctrl-C in the CLI, a button in the TUI) ends training after
the current step with a checkpoint, so `--resume` loses nothing.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from state import training_records
from state.errors import CoachError
from state.store import Store

from ..events import event_from
from . import dpo, records
from .data import prepare_data, set_chat_templates, to_dataset
from .distributed import from_main, ranks_from_environment
from .models import quiet_libraries, require_training_stack, resolve_model, stack_versions
from .recipe import TrainPlan, TrainRequest, lora_config, plan_training, quantization_config, sft_config

Emit = Callable[..., None]


@dataclass
class TrainResult:
    run_id: str
    status: str  # finished | interrupted
    run_dir: Path
    adapter_dir: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Trainer logs → `TrainingProgress` events; a stop flag → stop after this step, with a checkpoint."""

        def __init__(self, emit: Emit, stop: threading.Event) -> None:
            self.emit = emit
            self.stop = stop
            self.started = time.monotonic()
            self.first_step = 0
            self.method_metrics: dict[str, float] = {}
            """The last logged value of each DPO/GRPO figure (reward accuracy and margin, mean reward)."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.first_step = state.global_step
            self.emit("TrainingBegan", step=state.global_step, max_steps=state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            eval_loss = _maybe_float(logs.get("eval_loss"))
            if eval_loss is not None:
                self.emit("TrainingEval", step=state.global_step, max_steps=state.max_steps, eval_loss=eval_loss)
            if "loss" not in logs:
                return
            elapsed = time.monotonic() - self.started
            done = max(state.global_step - self.first_step, 1)
            remaining = max(state.max_steps - state.global_step, 0)
            tokens = logs.get("num_tokens")
            loss = float(logs["loss"])
            extra = {
                name: value for key, name in METHOD_LOGS.items() if (value := _maybe_float(logs.get(key))) is not None
            }
            self.method_metrics.update({f"last_{name}": value for name, value in extra.items()})
            self.emit(
                "TrainingProgress",
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(float(logs.get("epoch", state.epoch or 0.0)), 4),
                loss=loss,
                lr=float(logs.get("learning_rate", 0.0)),
                grad_norm=_maybe_float(logs.get("grad_norm")),
                tokens_per_s=round(tokens / elapsed, 1) if tokens and elapsed > 0 else None,
                eta_s=round(elapsed / done * remaining, 1),
                elapsed_s=round(elapsed, 1),
                **extra,  # stored with the step (the live event keeps its own fields)
            )

        def on_step_end(self, args, state, control, **kwargs):
            if self.stop.is_set():
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.emit("TrainingCheckpoint", step=state.global_step, path=str(path))

    return ProgressCallback


METHOD_LOGS = {
    "rewards/accuracies": "reward_accuracy",  # DPO: share of pairs whose chosen reply the policy now prefers
    "rewards/margins": "reward_margin",  # DPO: mean implicit reward of chosen minus rejected
    "reward": "reward",  # GRPO: mean rubric reward of the sampled completions
    "reward_std": "reward_std",
}
"""Trainer log keys of DPO and GRPO → the names they are stored under in TrainingProgress rows and the metrics."""


def _maybe_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def train_blocking(
    plan: TrainPlan,
    *,
    store: Store,
    runs_root: Path,
    emit: Emit,
    stop: threading.Event | None = None,
    extra_callbacks: list | None = None,
) -> TrainResult:
    """Run one training to its end (or to a stop request). Blocking: call it from a worker thread."""
    require_training_stack()
    quiet_libraries()
    stop = stop or threading.Event()
    request = plan.request
    ranks = ranks_from_environment()
    if not ranks.is_main:  # one training, recorded once: only the main rank writes to the store
        emit = _silent

    from transformers import AutoConfig, AutoTokenizer, PrinterCallback
    from trl import SFTTrainer

    resolved = resolve_model(
        plan.model_ref, note=lambda m: emit("TrainingNote", message=m), allow_download=plan.request.allow_download
    )
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    model_config = AutoConfig.from_pretrained(resolved.path)
    model_type = getattr(model_config.get_text_config(), "model_type", model_config.model_type)
    training_template = set_chat_templates(tokenizer, plan.preset.chat_template, model_type=model_type)
    data = _prepare(plan, tokenizer, training_template)

    run_dir_option = Path(request.out).expanduser().resolve() if request.out else None
    opened: tuple = ()
    if ranks.is_main:
        try:
            run_id, run_dir, resumed_from = _open_run(store, plan, request, data, resolved, runs_root, run_dir_option)
            opened = (run_id, str(run_dir), resumed_from)
        except CoachError as err:
            from_main(ranks, (str(err),))  # the other ranks stop with the same message
            raise
    opened = from_main(ranks, opened)
    if len(opened) == 1:
        raise CoachError(opened[0])
    run_id, run_dir, resumed_from = opened[0], Path(opened[1]), opened[2]

    def run_emit(kind: str, **payload: Any) -> None:
        emit(kind, run_id=run_id, **payload)

    run_emit("TrainingData", report=data.report.as_dict(), lines=data.report.lines())
    if data.note:
        run_emit("TrainingNote", message=data.note)
    run_emit("TrainingRun", run_dir=str(run_dir), resumed_from=resumed_from, notes=list(plan.notes))
    progress = _progress_callback_class()(run_emit, stop)
    closers: list[Callable[[], None]] = []
    try:
        callbacks = [progress, *(extra_callbacks or [])]
        has_validation = bool(data.val_rows)
        if request.method == "dpo":
            trainer = dpo.make_trainer(plan, resolved, tokenizer, data, run_dir / "checkpoints", callbacks)
        elif request.method == "grpo":
            from . import grpo

            trainer = grpo.make_trainer(
                plan, resolved, tokenizer, data, run_dir, callbacks, note=lambda m: run_emit("TrainingNote", message=m)
            )
            closers.append(trainer.coach_reward.close)
        else:
            dataset = to_dataset(data.rows)
            data.rows.clear()  # the Arrow table holds them now
            eval_dataset = to_dataset(data.val_rows) if data.val_rows else None
            data.val_rows.clear()
            trainer = SFTTrainer(
                model=str(resolved.path),
                args=sft_config(plan, run_dir / "checkpoints", evaluate=eval_dataset is not None),
                train_dataset=dataset,
                eval_dataset=eval_dataset,
                processing_class=tokenizer,
                peft_config=lora_config(plan),
                quantization_config=quantization_config(plan),
                callbacks=callbacks,
            )
        # Progress goes through our events; the stock printer would dump raw log dicts on stdout.
        trainer.remove_callback(PrinterCallback)
        output = trainer.train(resume_from_checkpoint=resumed_from)
        stopped_early = stop.is_set() and trainer.state.global_step < trainer.state.max_steps
        status = "interrupted" if stopped_early else "finished"
        adapter_dir = None
        if status == "finished" and has_validation and trainer.state.global_step % plan.eval_steps:
            trainer.evaluate()  # the last step's validation loss, when it fell between eval steps
        if status == "finished":
            adapter_dir = run_dir / "adapter"
            trainer.save_model(str(adapter_dir))  # the LoRA adapter, the tokenizer and its chat template
        metrics = _metrics(
            output,
            records.loss_history(store, run_id),
            trainer,
            data.report,
            records.loss_history(store, run_id, split="validation"),
        )
        metrics["method"] = request.method
        metrics.update(progress.method_metrics)
    except KeyboardInterrupt:
        if ranks.is_main:
            training_records.update_run(store, run_id, status="interrupted", event="TrainingInterrupted")
        raise
    except BaseException as err:
        if ranks.is_main:
            training_records.update_run(
                store, run_id, status="failed", event="TrainingFailed", error=f"{type(err).__name__}: {err}"[:2000]
            )
        raise
    finally:
        for close in closers:
            close()
    paths = {"run_dir": str(run_dir), "checkpoints": str(run_dir / "checkpoints")}
    if adapter_dir:
        paths["adapter"] = str(adapter_dir)
    if not ranks.is_main:
        return TrainResult(run_id, status, run_dir, adapter_dir, metrics, resumed_from)
    training_records.update_run(
        store,
        run_id,
        status=status,
        event=f"Training{status.capitalize()}",
        metrics=metrics,
        paths=paths,
        versions=stack_versions(),
    )
    run_emit("TrainingFinished", status=status, metrics=metrics, adapter=str(adapter_dir) if adapter_dir else None)
    return TrainResult(run_id, status, run_dir, adapter_dir, metrics, resumed_from)


def _prepare(plan: TrainPlan, tokenizer, training_template: str):
    """The run's data, read, measured and split as its method needs: examples, pairs or prompts."""
    request = plan.request
    split = {"val_fraction": request.val_fraction, "seed": plan.seed}  # every method holds out conversations alike
    if request.method == "dpo":
        return dpo.prepare_pairs(request.data, tokenizer, plan.max_length, request.over_length, **split)
    if request.method == "grpo":
        from . import grpo

        tokens = grpo.completion_tokens(plan)
        return grpo.prepare_prompts(
            request.data, tokenizer, plan.max_length, request.over_length, completion_tokens=tokens, **split
        )
    return prepare_data(
        request.data, tokenizer, training_template, plan.max_length, request.over_length, loss=request.loss, **split
    )


def _silent(kind: str, **payload: Any) -> None:
    """A rank other than the main one reports nothing: the main rank speaks for the training."""


def _open_run(store: Store, plan: TrainPlan, request: TrainRequest, data, resolved, runs_root: Path, run_dir_option):
    """The run record: reopened for --resume (with its last checkpoint), else created; (id, folder, checkpoint)."""
    from transformers.trainer_utils import get_last_checkpoint

    resumed_from = None
    if request.resume:
        run = records.find_resumable(
            store,
            data_sha256=data.sha256,
            preset=plan.preset.name,
            model=plan.model_ref,
            run_dir=run_dir_option,
            method=request.method,
        )
        if run is None:
            where = f" in {run_dir_option}" if run_dir_option else ""
            raise CoachError(
                f"nothing to resume{where}: no unfinished {request.method} training of {request.data} with preset "
                f"{plan.preset.name!r} and model {plan.model_ref!r}; start it without --resume"
            )
        if run.config.get("data", {}).get("sha256") != data.sha256:
            raise CoachError(f"the training data changed since run {run.id} began; start a new run without --resume")
        run_id, run_dir = run.id, Path(run.config["paths"]["run_dir"])
        resumed_from = get_last_checkpoint(str(run_dir / "checkpoints")) if (run_dir / "checkpoints").is_dir() else None
        if resumed_from is None:
            raise CoachError(
                f"run {run_id} has no checkpoint yet (in {run_dir / 'checkpoints'}); start it again without --resume"
            )
        training_records.update_run(store, run_id, status="running", event="TrainingResumed", recipe=plan.summary())
    else:
        run_id = records.new_run_id()
        run_dir = run_dir_option or (runs_root / run_id)
        if (run_dir / "checkpoints").is_dir() and get_last_checkpoint(str(run_dir / "checkpoints")):
            raise CoachError(
                f"{run_dir} already holds checkpoints: pass --resume to continue that run, or choose another --out"
            )
        training_records.create_run(
            store,
            run_id,
            {
                "data": {
                    "path": str(Path(request.data).resolve()),
                    "sha256": data.sha256,
                    "report": data.report.as_dict(),
                },
                "preset": plan.preset.name,
                "recipe": plan.summary(),
                "base_model": {"reference": resolved.reference, "path": str(resolved.path), "source": resolved.source},
                "versions": stack_versions(),
                "paths": {"run_dir": str(run_dir), "checkpoints": str(run_dir / "checkpoints")},
            },
        )

    return run_id, run_dir, resumed_from


def _metrics(
    output, losses: list[tuple[int, float]], trainer, report, val_losses: list[tuple[int, float]] | None = None
) -> dict[str, Any]:
    """The run's summary; `losses` (training) and `val_losses` (validation) span every session of a resumed run."""
    m = dict(output.metrics)
    val_losses = val_losses or []
    return {
        "global_step": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "train_loss": _maybe_float(m.get("train_loss", output.training_loss)),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "losses": [[step, loss] for step, loss in losses[-200:]],
        "last_val_loss": val_losses[-1][1] if val_losses else None,
        "val_losses": [[step, loss] for step, loss in val_losses[-200:]],
        "validation_examples": report.validation,
        "train_runtime_s": _maybe_float(m.get("train_runtime")),
        "examples": report.kept - report.validation,
        "tokens": report.total_tokens,
        "trained_tokens": report.trained_tokens,
        # the processes that trained together (data parallel under `accelerate launch`), as the trainer saw them
        "processes": trainer.accelerator.num_processes,
    }


class TrainerActor:
    """Runs trainings off the event loop and publishes their progress on the bus."""

    def __init__(self, store: Store, bus=None, *, runs_root: Path) -> None:
        self.store = store
        self.bus = bus
        self.runs_root = Path(runs_root)
        self.stop_requested = threading.Event()

    def stop(self) -> None:
        """Finish the current step, save a checkpoint and end the run as `interrupted` (resumable)."""
        self.stop_requested.set()

    def _emit(self, kind: str, run_id: str | None = None, **payload: Any) -> None:
        """Durable first (an Event row), then live (the bus), from whichever thread trains."""
        training_records.add_event(self.store, run_id, kind, **payload)
        if self.bus is None:
            return
        import anyio.from_thread

        publish = functools.partial(self.bus.publish, event_from(kind, run_id, payload=payload))
        try:
            anyio.from_thread.run_sync(publish)
        except RuntimeError:
            # Not in a live anyio worker thread. On the main thread (train_blocking called directly)
            # publishing is safe; from a thread whose loop has gone there is nobody left to tell.
            if threading.current_thread() is threading.main_thread():
                publish()

    def plan(self, request: TrainRequest) -> TrainPlan:
        return plan_training(request)

    async def run(self, request: TrainRequest | TrainPlan, *, extra_callbacks: list | None = None) -> TrainResult:
        import anyio.to_thread

        plan = request if isinstance(request, TrainPlan) else self.plan(request)
        self.stop_requested.clear()
        job = functools.partial(
            train_blocking,
            plan,
            store=self.store,
            runs_root=self.runs_root,
            emit=self._emit,
            stop=self.stop_requested,
            extra_callbacks=extra_callbacks,
        )
        try:
            # A cancelled caller (the TUI closing) does not wait for the step in flight: the stop flag
            # makes the thread end after it, with a checkpoint, so --resume loses nothing.
            return await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
        except BaseException:
            self.stop_requested.set()
            raise
