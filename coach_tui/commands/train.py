"""`coach train` and `coach export-model`: fine-tune on the sliced examples, then export for llama.cpp and Ollama."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import click

from actors.events import (
    PipelineEvent,
    TrainingBegan,
    TrainingCheckpoint,
    TrainingData,
    TrainingEval,
    TrainingFinished,
    TrainingNote,
    TrainingProgress,
    TrainingRun,
)
from actors.usecases.models import ExportNotVerified, ExportRequest, check_export_request, export_model
from actors.usecases.training import (
    Training,
    TrainRequest,
    check_training_request,
    plan_training_run,
    resolve_adapter,
)

from ..context import AppContext, pass_app
from ..formatting import duration
from ..json_output import echo_json
from ..progress import ProgressOutput


class TrainProgressView:
    """The headless face of a training run: one line per event that matters, and a bar of steps on a terminal."""

    def __init__(self, *, echo=click.echo, output: ProgressOutput | None = None) -> None:
        self.echo = output.line if output is not None else echo
        self.output = output
        self.started = time.monotonic()
        self._steps: int | None = None

    def _line(self, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.started:7.1f}s] {text}")

    def _bar(self, ev: PipelineEvent) -> None:
        out = self.output
        if out is None or not out.tty:  # elsewhere the lines say it all
            return
        match ev:
            case TrainingBegan(step=step, max_steps=max_steps):
                if self._steps is None:
                    self._steps = out.task("training steps", max_steps, plain=False)
                out.update(self._steps, completed=step, total=max_steps)
            case TrainingProgress() if self._steps is not None:
                out.update(
                    self._steps, completed=ev.step, total=ev.max_steps, description=f"training, loss {ev.loss:.4f}"
                )

    def render(self, ev: PipelineEvent) -> None:
        self._bar(ev)
        match ev:
            case TrainingNote(message=message):
                self._line(message)
            case TrainingData(lines=lines):
                for line in lines:
                    self._line(f"data: {line}")
            case TrainingRun(run_dir=run_dir, resumed_from=resumed_from):
                resumed = f", resuming from {Path(resumed_from).name}" if resumed_from else ""
                self._line(f"run {ev.run_id} in {run_dir}{resumed}")
            case TrainingBegan(step=step, max_steps=max_steps):
                self._line(f"training: step {step} of {max_steps}")
            case TrainingProgress():
                speed = f"{ev.tokens_per_s:,.0f} tok/s" if ev.tokens_per_s else "? tok/s"
                self._line(
                    f"step {ev.step}/{ev.max_steps}  loss {ev.loss:.4f}  lr {ev.lr:.2e}  {speed}  "
                    f"ETA {duration(ev.eta_s)}"
                )
            case TrainingEval(step=step, max_steps=max_steps, eval_loss=eval_loss):
                self._line(f"step {step}/{max_steps}  validation loss {eval_loss:.4f}")
            case TrainingCheckpoint(path=path):
                self._line(f"checkpoint saved: {path}")
            case TrainingFinished(status=status):
                self._line(f"training {status}")


@click.command("train")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training data: the messages JSONL that coach slice --out writes (sft; grpo takes its prompts), "
    "or the preference pairs of coach slice --pairs (dpo; grpo takes their prompts too).",
)
@click.option(
    "--method",
    type=click.Choice(["sft", "dpo", "grpo"]),
    default="sft",
    show_default=True,
    help="sft: supervised fine-tuning on the examples. dpo: direct preference optimization on the pairs "
    "(TRL's DPOTrainer). grpo: sample completions for each prompt and reward them with the judge on the "
    "rubric's single-reply criteria (TRL's GRPOTrainer; a judge call per criterion per completion).",
)
@click.option(
    "--from-adapter",
    "from_adapter",
    metavar="PATH_OR_RUN",
    help="dpo/grpo: continue this LoRA adapter (an adapter folder, or a finished training run's id, e.g. the SFT "
    "run) instead of a new one; it is also DPO's reference model.",
)
@click.option(
    "--beta",
    type=click.FloatRange(min=0),
    help="dpo: how far the model may move from its reference (default 0.1); grpo: KL weight (default 0, no "
    "reference model).",
)
@click.option(
    "--generations",
    type=click.IntRange(min=2),
    help="grpo: completions sampled per prompt (default 4).",
)
@click.option(
    "--completion-tokens",
    type=click.IntRange(min=1),
    help="grpo: longest sampled completion, in tokens (default 256).",
)
@click.option(
    "--reward-criteria",
    metavar="IDS",
    help="grpo: judge only these criteria, comma-separated (default: every criterion the rubric assesses on a "
    "single exchange; the safety gates among them are always judged).",
)
@click.option(
    "--run-config",
    "run_config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="grpo: the run config whose judge role scores completions (default: the embedded judge).",
)
@click.option(
    "--preset",
    default="tiny",
    show_default=True,
    help="Training preset from config/train-presets.yaml (tiny, gemma-3-12b).",
)
@click.option(
    "--model", metavar="HF_ID_OR_PATH", help="Base model instead of the preset's: a hub id or a local folder."
)
@click.option("--max-length", type=click.IntRange(min=16), help="Tokens per example (default: the preset's).")
@click.option(
    "--over-length",
    type=click.Choice(["drop", "truncate-front"]),
    help="What to do with examples above the max length: drop them, or remove their oldest exchanges. "
    "Without it, any such example stops the run before training (nothing is truncated silently).",
)
@click.option(
    "--allow-download",
    is_flag=True,
    help="Download a hub model that is not in the local Hugging Face cache (never done otherwise).",
)
@click.option(
    "--allow-no-4bit",
    is_flag=True,
    help="Without a CUDA GPU, train plain LoRA on the unquantized base instead of refusing a 4-bit preset.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the last unfinished run of this data and preset from its last checkpoint."
)
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps (default: the preset's).")
@click.option("--save-steps", type=click.IntRange(min=1), help="Checkpoint every N steps (default: the preset's).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder for checkpoints and the adapter (default: WORKSPACE/train/RUN).",
)
@click.option(
    "--loss",
    "objective",
    type=click.Choice(["all-assistant", "last-reply"]),
    default="all-assistant",
    show_default=True,
    help="Which tokens are supervised. all-assistant: every assistant reply of the example's history "
    "(slices of one conversation are nested, so its early replies are trained once per slice: more "
    "signal, weighted toward openings). last-reply: only the final reply, with everything before it as "
    "context (each reply trained once, as in TRL's prompt-completion form; fewer tokens with loss).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(min=0, max=1, max_open=True),
    help="Fraction of conversations held out for a validation loss; all slices of one conversation "
    "(same transcript_id, else same first user message) stay on one side. Default: 0.1 with at least "
    "10 conversations, else 0. The split is fixed by the preset's seed.",
)
@click.option(
    "--eval-steps",
    type=click.IntRange(min=1),
    help="Validation loss every N steps (default: with each checkpoint, --save-steps), and at the end.",
)
@click.option(
    "--report-to",
    type=click.Choice(["none", "tensorboard"]),
    default="none",
    show_default=True,
    help="Also write the logged losses as TensorBoard event files (offline, under RUN_DIR/checkpoints/runs; "
    "needs pip install tensorboard). The store and the Train screen have them either way.",
)
@click.option(
    "--presets",
    "presets_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another presets YAML instead of config/train-presets.yaml.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run's result (id, status, folders, metrics) as one JSON document on stdout; "
    "the plan and the progress go to stderr.",
)
@pass_app
def train_cmd(
    app: AppContext,
    data: Path,
    preset: str,
    model: str | None,
    max_length: int | None,
    over_length: str | None,
    allow_no_4bit: bool,
    allow_download: bool,
    resume: bool,
    steps: int | None,
    save_steps: int | None,
    out: Path | None,
    presets_file: Path | None,
    objective: str,
    val_fraction: float | None,
    eval_steps: int | None,
    report_to: str,
    as_json: bool,
    method: str,
    from_adapter: str | None,
    beta: float | None,
    generations: int | None,
    completion_tokens: int | None,
    reward_criteria: str | None,
    run_config: Path | None,
) -> None:
    """Fine-tune a model on training examples with LoRA (QLoRA on a CUDA GPU).

    Loss is on assistant tokens only (every reply, or the last one with
    --loss last-reply); a validation split of whole conversations is held out
    when there are enough of them. Examples above the max length are
    counted and reported before training. Checkpoints are saved every few
    steps: after a kill or Ctrl-C, run the same command with --resume.
    """
    adapter = resolve_adapter(app.store, from_adapter) if from_adapter else None
    request = TrainRequest(
        method=method,
        from_adapter=adapter,
        beta=beta,
        generations=generations,
        completion_tokens=completion_tokens,
        reward_criteria=tuple(c.strip() for c in (reward_criteria or "").split(",") if c.strip()),
        run_config=run_config,
        domain=Path(app.domain_option) if app.domain_option else None,
        data=data,
        preset=preset,
        model=model,
        max_length=max_length,
        over_length=over_length,
        allow_no_4bit=allow_no_4bit,
        allow_download=allow_download,
        resume=resume,
        steps=steps,
        save_steps=save_steps,
        out=out,
        presets_file=presets_file,
        loss=objective,
        val_fraction=val_fraction,
        eval_steps=eval_steps,
        report_to=report_to,
    )
    # Before any model loads, cheapest first: the files (every line of the data), the workspace,
    # then the plan (preset, numbers, this machine: it imports torch, seconds on a busy machine).
    check_training_request(request, app.pack(check_rubric_doc=False) if method == "grpo" else None)
    store = app.store
    plan = plan_training_run(request)
    steps_text = "epochs" if plan.max_steps == -1 else f"{plan.max_steps} steps"
    say = click.echo if not as_json else lambda text: click.echo(text, err=True)
    what = {"sft": "SFT", "dpo": f"DPO (beta {plan.beta})", "grpo": "GRPO with the rubric reward"}[method]
    say(
        f"preset {plan.preset.name}: {what}, {plan.model_ref} on {'CUDA' if plan.cuda else 'CPU'}, "
        f"{'4-bit QLoRA' if plan.use_4bit else 'LoRA'} ({plan.dtype}), max length {plan.max_length:,}, {steps_text}"
        + (f", from adapter {adapter}" if adapter else "")
    )
    for note in plan.notes:
        say(f"note: {note}")

    output = ProgressOutput(err=as_json)
    training = Training(store, app.workspace, plan, TrainProgressView(output=output).render)

    def on_sigint(signum, frame):  # first Ctrl-C: stop after this step with a checkpoint; second: abort
        if training.stopping:
            raise KeyboardInterrupt
        training.stop()
        click.echo("\nstopping after the current step and saving a checkpoint (Ctrl-C again to abort)", err=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with output:
            result = anyio.run(training.run)
    finally:
        signal.signal(signal.SIGINT, previous)

    m = result.metrics
    if as_json:
        echo_json(train_result_json(result, data, preset, method))
        return

    def loss(value) -> str:
        return "?" if value is None else f"{value:.4f}"

    click.echo(
        f"run {result.run_id} {result.status} at step {m.get('global_step')}/{m.get('max_steps')}: "
        f"loss {loss(m.get('first_loss'))} → {loss(m.get('last_loss'))}"
        + (f", validation loss {loss(m.get('last_val_loss'))}" if m.get("last_val_loss") is not None else "")
    )
    if result.adapter_dir:
        click.echo(f"adapter: {result.adapter_dir}")
        click.echo(f"next: coach export-model {result.run_id}")
    else:
        click.echo(f"continue with: coach train --data {data} --preset {preset} --method {method} --resume")


def train_result_json(result, data: Path, preset: str, method: str = "sft") -> dict:
    """`coach train --json`: what the closing lines say, as data, with the command that comes next."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "run_dir": result.run_dir,
        "adapter_dir": result.adapter_dir,
        "resumed_from": result.resumed_from,
        "metrics": result.metrics,
        "next": (
            f"coach export-model {result.run_id}"
            if result.adapter_dir
            else f"coach train --data {data} --preset {preset}"
            + (f" --method {method}" if method != "sft" else "")
            + " --resume"
        ),
    }


@click.command("export-model")
@click.argument("run", default="latest")
@click.option(
    "--quant",
    default="Q4_K_M",
    show_default=True,
    help="llama.cpp quantization (Q4_K_M, Q5_K_M, Q6_K, Q8_0, … or F16 for none).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the merged checkpoint, the GGUFs and the Modelfile (default: RUN_DIR/export).",
)
@click.option(
    "--push-to-hub",
    "hub_repo",
    metavar="REPO_ID",
    help="Also upload adapter, merged model, GGUF and Modelfile to this Hugging Face Hub repo (private).",
)
@click.option("--no-verify", is_flag=True, help="Skip loading the GGUF and generating a reply.")
@pass_app
def export_model_cmd(
    app: AppContext, run: str, quant: str, out: Path | None, hub_repo: str | None, no_verify: bool
) -> None:
    """Merge a training run's adapter, convert to GGUF, quantize, and write an Ollama Modelfile.

    RUN is a run id from coach train (default: the latest training run).
    """
    started = time.monotonic()
    request = ExportRequest(run=run, quant=quant, out=out, hub_repo=hub_repo, verify=not no_verify)
    store, pack = app.store, app.pack(check_rubric_doc=False)
    check_export_request(store, request)
    output = ProgressOutput()
    step: list[int] = []

    def note(text: str) -> None:
        # Each note starts a step whose length nobody knows in advance: a spinner with the step, on a terminal.
        output.line(f"[{time.monotonic() - started:7.1f}s] {text}")
        if output.tty:
            if not step:
                step.append(output.task(text, None, plain=False))
            output.update(step[0], description=text)

    try:
        with output:
            result = export_model(store, pack, request, note=note, workspace=app.workspace)
    except ExportNotVerified as err:  # the files exist: say where, then fail with the reason
        _print_export(err.result)
        raise
    if request.verify:
        click.echo(f"verified: llama.cpp answered {result.reply[:160]!r}")
    _print_export(result)


def _print_export(result) -> None:
    click.echo(f"merged checkpoint: {result.merged_dir}")
    click.echo(f"GGUF f16:          {result.gguf_f16}")
    click.echo(f"GGUF {result.quant}:{' ' * max(1, 13 - len(result.quant))}{result.gguf}")
    click.echo(f"Ollama Modelfile:  {result.modelfile}  ({result.family.name} chat format, num_ctx {result.num_ctx})")
    click.echo(f"model card:        {result.model_card}")
    click.echo(f"run it in Ollama:  {result.ollama_command}   then   ollama run {result.ollama_name}")
    click.echo("\nrun-config snippet to chat with it or evaluate it (coach eval, the chat screen):\n")
    click.echo(result.run_config_snippet())
