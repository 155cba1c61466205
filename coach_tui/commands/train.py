"""`coach train` and `coach export-model`: fine-tune on the sliced examples, then export for llama.cpp and Ollama."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from actors.events import EventBus, PipelineEvent
from state.errors import CoachError

from ..context import AppContext, pass_app
from ..formatting import duration


class TrainProgressView:
    """The headless face of a training run: one line per event that matters."""

    def __init__(self, bus: EventBus, *, echo=click.echo) -> None:
        self.receive = bus.subscribe()
        self.echo = echo
        self.started = time.monotonic()

    def _line(self, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.started:7.1f}s] {text}")

    def render(self, ev: PipelineEvent) -> None:
        d = ev.data
        if ev.kind == "TrainingNote":
            self._line(d["message"])
        elif ev.kind == "TrainingData":
            for line in d["lines"]:
                self._line(f"data: {line}")
        elif ev.kind == "TrainingRun":
            resumed = f", resuming from {Path(d['resumed_from']).name}" if d.get("resumed_from") else ""
            self._line(f"run {ev.run_id} in {d['run_dir']}{resumed}")
        elif ev.kind == "TrainingBegan":
            self._line(f"training: step {d['step']} of {d['max_steps']}")
        elif ev.kind == "TrainingProgress":
            speed = f"{d['tokens_per_s']:,.0f} tok/s" if d.get("tokens_per_s") else "? tok/s"
            self._line(
                f"step {d['step']}/{d['max_steps']}  loss {d['loss']:.4f}  lr {d['lr']:.2e}  {speed}  "
                f"ETA {duration(d.get('eta_s'))}"
            )
        elif ev.kind == "TrainingCheckpoint":
            self._line(f"checkpoint saved: {d['path']}")
        elif ev.kind == "TrainingFinished":
            self._line(f"training {d['status']}")

    async def follow(self) -> None:
        async with self.receive:
            async for ev in self.receive:
                self.render(ev)


@click.command("train")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Training examples: the messages JSONL that coach slice writes.")
@click.option("--preset", default="tiny", show_default=True,
              help="Training preset from config/train-presets.yaml (tiny, gemma-3-12b).")
@click.option("--model", metavar="HF_ID_OR_PATH", help="Base model instead of the preset's: a hub id or a local folder.")
@click.option("--max-length", type=click.IntRange(min=16), help="Tokens per example (default: the preset's).")
@click.option("--over-length", type=click.Choice(["drop", "truncate-front"]),
              help="What to do with examples above the max length: drop them, or remove their oldest exchanges. "
                   "Without it, any such example stops the run before training (nothing is truncated silently).")
@click.option("--allow-download", is_flag=True,
              help="Download a hub model that is not in the local Hugging Face cache (never done otherwise).")
@click.option("--allow-no-4bit", is_flag=True,
              help="Without a CUDA GPU, train plain LoRA on the unquantized base instead of refusing a 4-bit preset.")
@click.option("--resume", is_flag=True, help="Continue the last unfinished run of this data and preset from its last checkpoint.")
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps (default: the preset's).")
@click.option("--save-steps", type=click.IntRange(min=1), help="Checkpoint every N steps (default: the preset's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder for checkpoints and the adapter (default: WORKSPACE/train/RUN).")
@click.option("--presets", "presets_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Another presets YAML instead of config/train-presets.yaml.")
@pass_app
def train_cmd(app: AppContext, data: Path, preset: str, model: str | None, max_length: int | None,
              over_length: str | None, allow_no_4bit: bool, allow_download: bool, resume: bool, steps: int | None,
              save_steps: int | None, out: Path | None, presets_file: Path | None) -> None:
    """Fine-tune a model on training examples with LoRA (QLoRA on a CUDA GPU).

    Loss is on every assistant turn only; examples above the max length are
    counted and reported before training. Checkpoints are saved every few
    steps: after a kill or Ctrl-C, run the same command with --resume.
    """
    import anyio

    from actors.training.models import calm_cpu_threads, require_training_stack

    calm_cpu_threads()
    require_training_stack()
    from actors.training.recipe import TrainRequest, plan_training
    from actors.training.trainer import TrainerActor

    request = TrainRequest(
        data=data, preset=preset, model=model, max_length=max_length, over_length=over_length,
        allow_no_4bit=allow_no_4bit, allow_download=allow_download, resume=resume, steps=steps, save_steps=save_steps, out=out,
        presets_file=presets_file,
    )
    plan = plan_training(request)
    steps_text = "epochs" if plan.max_steps == -1 else f"{plan.max_steps} steps"
    click.echo(
        f"preset {plan.preset.name}: {plan.model_ref} on {'CUDA' if plan.cuda else 'CPU'}, "
        f"{'4-bit QLoRA' if plan.use_4bit else 'LoRA'} ({plan.dtype}), max length {plan.max_length:,}, {steps_text}"
    )
    for note in plan.notes:
        click.echo(f"note: {note}")

    bus = EventBus()
    view = TrainProgressView(bus)
    actor = TrainerActor(app.store, bus, runs_root=app.workspace / "train")

    def on_sigint(signum, frame):  # first Ctrl-C: stop after this step with a checkpoint; second: abort
        if actor.stop_requested.is_set():
            raise KeyboardInterrupt
        actor.stop()
        click.echo("\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)", err=True)

    async def main():
        outcome, error = None, None
        async with anyio.create_task_group() as tg:
            tg.start_soon(view.follow)
            try:
                outcome = await actor.run(plan)
            except Exception as err:  # re-raised below, outside the task group, so not wrapped in a group
                error = err
            finally:
                bus.close()
        if error is not None:
            raise error
        return outcome

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = anyio.run(main)
    finally:
        signal.signal(signal.SIGINT, previous)

    m = result.metrics

    def loss(value) -> str:
        return "?" if value is None else f"{value:.4f}"

    click.echo(
        f"run {result.run_id} {result.status} at step {m.get('global_step')}/{m.get('max_steps')}: "
        f"loss {loss(m.get('first_loss'))} → {loss(m.get('last_loss'))}"
    )
    if result.adapter_dir:
        click.echo(f"adapter: {result.adapter_dir}")
        click.echo(f"next: coach export-model {result.run_id}")
    else:
        click.echo(f"continue with: coach train --data {data} --preset {preset} --resume")


@click.command("export-model")
@click.argument("run", default="latest")
@click.option("--quant", default="Q4_K_M", show_default=True,
              help="llama.cpp quantization (Q4_K_M, Q5_K_M, Q6_K, Q8_0, … or F16 for none).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the merged checkpoint, the GGUFs and the Modelfile (default: RUN_DIR/export).")
@click.option("--push-to-hub", "hub_repo", metavar="REPO_ID",
              help="Also upload adapter, merged model, GGUF and Modelfile to this Hugging Face Hub repo (private).")
@click.option("--no-verify", is_flag=True, help="Skip loading the GGUF and generating a reply.")
@pass_app
def export_model_cmd(app: AppContext, run: str, quant: str, out: Path | None, hub_repo: str | None,
                     no_verify: bool) -> None:
    """Merge a training run's adapter, convert to GGUF, quantize, and write an Ollama Modelfile.

    RUN is a run id from coach train (default: the latest training run).
    """
    from actors.training.models import calm_cpu_threads, require_training_stack

    calm_cpu_threads()
    require_training_stack()
    from actors.training.export import export_model

    pack = app.pack(check_rubric_doc=False)
    started = time.monotonic()

    def note(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.1f}s] {text}")

    result = export_model(
        app.store, run, quant=quant, out=out, system_prompt=pack.system_prompt, name=pack.name, note=note,
        verify=not no_verify, hub_repo=hub_repo,
    )
    if not no_verify:
        if not result.verified:
            raise CoachError(f"the exported GGUF {result.gguf} loaded but generated nothing")
        click.echo(f"verified: llama.cpp answered {result.reply[:160]!r}")
    click.echo(f"merged checkpoint: {result.merged_dir}")
    click.echo(f"GGUF f16:          {result.gguf_f16}")
    click.echo(f"GGUF {result.quant}:{' ' * max(1, 13 - len(result.quant))}{result.gguf}")
    click.echo(f"Ollama Modelfile:  {result.modelfile}  (ollama create coach -f {result.modelfile})")
    click.echo("\nrun-config snippet to chat with it or evaluate it (coach eval, the chat screen):\n")
    click.echo(result.run_config_snippet())
