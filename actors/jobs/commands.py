"""What a form asks for, checked and turned into the `coach` command line a job will run.

Why check here and not leave it to the command: a job runs unseen, and a
mistake it finds after a minute of loading is a failed job in a list, where
the same mistake found now is a message beside the field. Each check raises
`FieldProblem`, naming the field, so the form can point at it. The command
checks again (these checks are the cheap subset of its own); nothing here
loads a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from actors.run_config import BUNDLED_NAMES, load_run_config
from state.errors import CoachError

QUANTS = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16")
"""The quantizations the export form offers (the command accepts any llama.cpp knows)."""
LOSSES = ("all-assistant", "last-reply")
METHODS = ("sft", "dpo", "grpo")
"""`coach train --method`: supervised examples, preference pairs, or rubric-rewarded sampling."""
OVER_LENGTH = ("drop", "truncate-front")
OVER_LIMIT = ("keep-recent", "drop")


class FieldProblem(CoachError):
    """A form field's value cannot start a job; `field` is the form's name for it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class JobPlan:
    """A checked job: its kind, a line that says what it does, and the `coach` arguments after the global options."""

    kind: str
    title: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class SliceJob:
    out: Path
    max_tokens: int
    over_limit: str = "keep-recent"
    min_context: int = 3
    seed: int | None = None
    pairs: Path | None = None
    """Also write DPO preference pairs here (`coach slice --pairs`)."""


@dataclass(frozen=True)
class TrainJob:
    data: Path
    preset: str = "tiny"
    steps: int | None = None
    val_fraction: float | None = None
    loss: str = "all-assistant"
    over_length: str | None = None
    resume: bool = False
    method: str = "sft"
    from_adapter: str | None = None
    """dpo/grpo: continue this adapter (a folder, or a finished training run's id) instead of a new one."""


@dataclass(frozen=True)
class ExportJob:
    run: str
    quant: str = "Q4_K_M"
    verify: bool = True


@dataclass(frozen=True)
class CompareJob:
    base: str
    candidate: str
    personas: int = 5
    runs: int = 1
    exchanges: int = 20
    seed: int = 9000
    max_tokens: int | None = None


def _at_least(field: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise FieldProblem(field, f"at least {minimum}, not {value}")


def _one_of(field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise FieldProblem(field, f"one of {', '.join(allowed)}, not {value!r}")


def plan_slice(job: SliceJob, *, passed_transcripts: int) -> JobPlan:
    """`coach slice`; refuses a folder as the output and a workspace with nothing passed to slice."""
    out = job.out.expanduser()
    if not str(job.out).strip():
        raise FieldProblem("Out", "give the training data file to write, such as training_data.jsonl")
    if out.is_dir():
        raise FieldProblem("Out", f"{out} is a folder; give a file name such as training_data.jsonl")
    if not out.parent.is_dir():
        raise FieldProblem("Out", f"no folder {out.parent} to write into")
    _at_least("Max tokens", job.max_tokens, 1)
    _at_least("Min context", job.min_context, 1)
    _at_least("Seed", job.seed, 0)
    _one_of("Over limit", job.over_limit, OVER_LIMIT)
    pairs = _pairs_file(job.pairs, out)
    if passed_transcripts < 1:
        raise FieldProblem(
            "Out", "no passed transcripts in this workspace to slice: run and curate first, or coach import them"
        )
    args = ["slice", "--out", str(out.resolve()), "--max-tokens", str(job.max_tokens)]
    args += ["--over-limit", job.over_limit, "--min-context", str(job.min_context)]
    if job.seed is not None:
        args += ["--seed", str(job.seed)]
    if pairs is not None:
        args += ["--pairs", str(pairs.resolve())]
    also = f" and pairs → {pairs.name}" if pairs is not None else ""
    return JobPlan("slice", f"slice {passed_transcripts} passed transcript(s) → {out.name}{also}", tuple(args))


def _pairs_file(pairs: Path | None, out: Path) -> Path | None:
    """The pairs file a slice also writes, checked as `Out` is; blank means none."""
    if pairs is None or not str(pairs).strip():
        return None
    pairs = pairs.expanduser()
    if pairs.is_dir():
        raise FieldProblem("Pairs", f"{pairs} is a folder; give a file name such as preference_pairs.jsonl")
    if not pairs.parent.is_dir():
        raise FieldProblem("Pairs", f"no folder {pairs.parent} to write into")
    if pairs.resolve() == out.resolve():
        raise FieldProblem("Pairs", "the pairs need a file of their own, not the examples' file")
    return pairs


def _first_record(data: Path) -> dict | None:
    """The data file's first non-blank line as JSON, or None when it is not a JSON object (the command says why)."""
    try:
        with data.open(encoding="utf-8") as lines:
            line = next((line for line in lines if line.strip()), "")
        record = json.loads(line)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _check_data_fits_method(data: Path, method: str) -> None:
    """SFT reads examples (`messages`), DPO reads pairs (`prompt`/`chosen`/`rejected`): the likeliest mix-up."""
    record = _first_record(data)
    if record is None:
        return
    if method == "dpo" and "messages" in record and "chosen" not in record:
        raise FieldProblem("Data", f"{data.name} holds SFT examples; dpo trains on preference pairs (slice with Pairs)")
    if method == "sft" and "chosen" in record and "messages" not in record:
        raise FieldProblem("Data", f"{data.name} holds preference pairs; sft trains on examples (or choose dpo)")


def preset_names(presets_file: Path | None = None) -> list[str]:
    """The training presets a form may offer (the bundled file unless another is given)."""
    from actors.training.presets import load_presets

    return sorted(load_presets(presets_file))


def plan_train(job: TrainJob, *, presets_file: Path | None = None) -> JobPlan:
    """`coach train`; the data file must exist and hold lines, the preset must be one of the file's."""
    data = job.data.expanduser()
    if not str(job.data).strip():
        raise FieldProblem("Data", "give the training data file (coach slice writes it)")
    if not data.exists():
        first = "slice with a Pairs file first" if job.method == "dpo" else "slice first"
        raise FieldProblem("Data", f"no such file: {data} ({first}: s on this screen)")
    if not data.is_file():
        raise FieldProblem("Data", f"{data} is not a file")
    if data.stat().st_size == 0:
        raise FieldProblem("Data", f"{data} is empty")
    try:
        names = preset_names(presets_file)
    except CoachError as err:
        raise FieldProblem("Preset", str(err)) from None
    if job.preset not in names:
        raise FieldProblem("Preset", f"unknown preset {job.preset!r}; presets: {', '.join(names)}")
    _at_least("Steps", job.steps, 1)
    if job.val_fraction is not None and not 0 <= job.val_fraction < 1:
        raise FieldProblem("Validation", f"a fraction from 0 up to (not including) 1, not {job.val_fraction}")
    _one_of("Loss", job.loss, LOSSES)
    _one_of("Over length", job.over_length, OVER_LENGTH)
    _one_of("Method", job.method, METHODS)
    _check_data_fits_method(data, job.method)
    from_adapter = (job.from_adapter or "").strip()
    if from_adapter and job.method == "sft":
        raise FieldProblem("From adapter", "only dpo and grpo continue an adapter; leave it blank for sft")
    args = ["train", "--data", str(data.resolve()), "--preset", job.preset]
    args += ["--loss", job.loss] if job.method == "sft" else ["--method", job.method]
    if from_adapter:
        args += ["--from-adapter", from_adapter]
    if job.steps is not None:
        args += ["--steps", str(job.steps)]
    if job.val_fraction is not None:
        args += ["--val-fraction", str(job.val_fraction)]
    if job.over_length:
        args += ["--over-length", job.over_length]
    if job.resume:
        args.append("--resume")
    if presets_file is not None:
        args += ["--presets", str(Path(presets_file).resolve())]
    resumed = " (resume)" if job.resume else ""
    method = "" if job.method == "sft" else f" ({job.method})"
    return JobPlan("train", f"train {job.preset}{method} on {data.name}{resumed}", tuple(args))


def plan_export(job: ExportJob, *, finished_runs: dict[str, str]) -> JobPlan:
    """`coach export-model RUN`; `finished_runs` maps the training runs that can be exported to their adapter."""
    if not job.run:
        raise FieldProblem("Run", "no finished training run to export yet (train first: t on this screen)")
    if job.run not in finished_runs:
        raise FieldProblem("Run", f"{job.run} is not a finished training run of this workspace")
    adapter = finished_runs[job.run]
    if adapter and not Path(adapter).exists():
        raise FieldProblem("Run", f"the run's adapter is no longer on disk: {adapter}")
    _one_of("Quantization", job.quant, QUANTS)
    args = ["export-model", job.run, "--quant", job.quant]
    if not job.verify:
        args.append("--no-verify")
    return JobPlan("export", f"export {job.run} → GGUF {job.quant}", tuple(args))


def _check_model(field: str, spec: str, config_path: Path | None) -> str:
    spec = spec.strip()
    if not spec:
        raise FieldProblem(field, "give a bundled model, a .gguf file or a backend of the run config")
    cfg = load_run_config(config_path)
    if spec in cfg.all_backends() or spec in BUNDLED_NAMES:
        return spec
    if not spec.endswith(".gguf"):
        raise FieldProblem(
            field,
            f"{spec!r} is not a backend of the run config ({', '.join(cfg.all_backends()) or 'none'}), "
            f"a bundled model ({', '.join(BUNDLED_NAMES)}) or a .gguf file",
        )
    path = cfg.model_path(spec)
    if not path.is_file():
        raise FieldProblem(field, f"no such GGUF file: {path}")
    return str(path)


def plan_compare(job: CompareJob, *, config_path: Path | None = None) -> JobPlan:
    """`coach eval compare`; both models must resolve (a GGUF must exist) and differ."""
    try:
        base = _check_model("Base", job.base, config_path)
        candidate = _check_model("Candidate", job.candidate, config_path)
    except FieldProblem:
        raise
    except CoachError as err:  # the run config itself is broken
        raise FieldProblem("Base", str(err)) from None
    if base == candidate:
        raise FieldProblem("Candidate", "the same model as the base: compare two different models")
    _at_least("Personas", job.personas, 1)
    _at_least("Runs", job.runs, 1)
    _at_least("Exchanges", job.exchanges, 1)
    _at_least("Max tokens", job.max_tokens, 16)
    args = ["eval", "compare", "--base", base, "--candidate", candidate]
    args += ["--personas", str(job.personas), "--runs", str(job.runs), "--exchanges", str(job.exchanges)]
    args += ["--seed", str(job.seed)]
    if job.max_tokens is not None:
        args += ["--max-tokens", str(job.max_tokens)]
    if config_path is not None:
        args += ["--config", str(Path(config_path).resolve())]
    short = [m.rsplit("/", 1)[-1] for m in (base, candidate)]
    size = f"{job.personas}×{job.runs}×{job.exchanges}"
    return JobPlan("eval", f"eval compare {short[0]} vs {short[1]} ({size})", tuple(args))
