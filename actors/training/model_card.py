"""The model card (README.md) written beside an exported GGUF: what the model is and where it came from.

Everything in it comes from records, never from memory: the training run's
store record (base model, data file and its length report, preset, recipe,
metrics), the workspace's slice records for the transcripts behind the data
(only when they match the file the run trained on), the export itself
(files, chat format, verification), and the latest comparison report in the
workspace. What is not known is said to be unknown. `render_model_card` and
`comparison_summary` are pure; the export gathers their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataProvenance:
    path: str | None
    sha256: str | None
    file_state: str
    """"unchanged since training", "changed since training", "no longer on disk" or "unknown"."""
    report: Mapping[str, Any] = field(default_factory=dict)
    """The training run's length report of the file (examples, kept, dropped, truncated, tokens, …)."""
    transcripts: int | None = None
    """Transcripts the examples were sliced from, when the workspace's slice records match the file."""
    length_mix: str | None = None
    """The slice records' length table, when they match the file."""


@dataclass(frozen=True)
class Verification:
    done: bool
    ok: bool = False
    reason: str = ""
    reply: str = ""
    prompt: str = ""


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def comparison_summary(report: Mapping[str, Any], gguf: str | None = None) -> list[str]:
    """A comparison report (`comparison_report.json`) in a few Markdown bullets; tolerant of missing keys.

    With `gguf` (this export's file), says whether the report's candidate is this model.
    """
    verdict = report.get("verdict") or {}
    base, cand, paired = report.get("base") or {}, report.get("candidate") or {}, report.get("paired") or {}
    outcome = verdict.get("outcome") or ("PASS" if verdict.get("passed") else "FAIL" if "passed" in verdict else "?")
    lines = [f"- verdict: **{outcome}**" + (f" — {verdict['reason']}" if verdict.get("reason") else "")]
    if verdict.get("safety_gate"):
        lines.append(f"- safety gate: {verdict['safety_gate']}")
    lines.append(f"- base: `{base.get('model', '?')}`; candidate: `{cand.get('model', '?')}`")
    lines.append(
        f"- mean score: base {_fmt(base.get('mean'))}, candidate {_fmt(cand.get('mean'))}; "
        f"pass rate: base {_fmt(base.get('pass_rate'), '.0%')}, candidate {_fmt(cand.get('pass_rate'), '.0%')}"
    )
    if paired:
        lines.append(
            f"- paired: {paired.get('n_pairs', '?')} pair(s), mean difference {_fmt(paired.get('mean_difference'))} "
            f"({_fmt(paired.get('improvement_pct'), '+.1f')} %), t-test p = {_fmt(paired.get('t_pvalue'), '.4f')}"
        )
    if gguf is not None and cand.get("model") != gguf:
        lines.append("- note: its candidate is not this export; compare this GGUF with `coach eval compare`")
    return lines


def _settings(recipe: Mapping[str, Any], metrics: Mapping[str, Any], preset: str | None) -> list[str]:
    lora = recipe.get("lora") or {}
    training = recipe.get("training") or {}
    steps = metrics.get("global_step")
    max_steps = metrics.get("max_steps") or recipe.get("max_steps")
    lines = [
        f"- preset: `{preset or recipe.get('preset') or '?'}`",
        f"- steps: {steps if steps is not None else '?'} of {max_steps if max_steps is not None else '?'}"
        + (f" ({training['num_train_epochs']} epoch(s) planned)" if recipe.get("max_steps") == -1 else ""),
        f"- device: {recipe.get('device', '?')}; {recipe.get('quantization') or 'LoRA on the unquantized base'}; "
        f"dtype {recipe.get('dtype', '?')}",
        f"- max length: {_fmt(recipe.get('max_length'), ',')} tokens per example",
        f"- LoRA: r {lora.get('r', '?')}, alpha {lora.get('alpha', '?')}, dropout {lora.get('dropout', '?')}, "
        f"target modules {lora.get('target_modules', '?')}"
        + (f", excluded {lora['exclude_modules']}" if lora.get("exclude_modules") else ""),
        f"- learning rate: {training.get('learning_rate', '?')} ({training.get('lr_scheduler_type', '?')} schedule, "
        f"warmup ratio {training.get('warmup_ratio', '?')})",
        f"- batch: {training.get('per_device_train_batch_size', '?')} × "
        f"{training.get('gradient_accumulation_steps', '?')} gradient accumulation; optimizer "
        f"{recipe.get('optim') or training.get('optim', '?')}; seed {training.get('seed', '?')}",
    ]
    if metrics.get("first_loss") is not None or metrics.get("last_loss") is not None:
        lines.append(f"- loss: {_fmt(metrics.get('first_loss'), '.4f')} → {_fmt(metrics.get('last_loss'), '.4f')}")
    return lines


def _data(data: DataProvenance) -> list[str]:
    report = data.report
    lines = [
        f"- dataset file: `{data.path or '?'}` ({data.file_state}"
        + (f"; sha256 {data.sha256[:16]}…" if data.sha256 else "")
        + ")",
    ]
    if data.transcripts is not None:
        lines.append(f"- transcripts: {data.transcripts}")
    else:
        lines.append("- transcripts: unknown (no slice record in this workspace matches the file)")
    if report:
        kept, examples = report.get("kept"), report.get("examples")
        line = f"- training examples: {kept if kept is not None else '?'} trained"
        if examples is not None and examples != kept:
            line += f" of {examples} in the file"
        extra = [f"{report[k]} {k}" for k in ("dropped", "truncated") if report.get(k)]
        lines.append(line + (f" ({', '.join(extra)} over the length limit)" if extra else ""))
        lines.append(
            f"- tokens: {_fmt(report.get('total_tokens'), ',')} in all, {_fmt(report.get('trained_tokens'), ',')} "
            f"with loss (assistant turns); longest example {_fmt(report.get('longest'), ',')}"
        )
    else:
        lines.append("- training examples: unknown (the run recorded no length report)")
    if data.length_mix:
        lines += ["", "Length mix (tokens per example, from the slice records):", "", "```", data.length_mix, "```"]
    else:
        lines.append("- length mix: unknown (no slice record in this workspace matches the file)")
    return lines


def render_model_card(
    *,
    name: str,
    ollama_name: str,
    run_id: str,
    exported_at: str,
    base_model: Mapping[str, Any],
    family: str,
    architecture: str,
    files: Sequence[tuple[str, str]],
    num_ctx: int,
    preset: str | None,
    recipe: Mapping[str, Any],
    metrics: Mapping[str, Any],
    data: DataProvenance,
    verification: Verification,
    comparison: Sequence[str] | None,
    comparison_source: str | None = None,
) -> str:
    """The README.md text. `files`: (label, file name) pairs; `comparison`: `comparison_summary` lines or None."""
    base = base_model.get("reference") or "?"
    lines = [
        f"# {name}: a fine-tune of {base}",
        "",
        f"Exported by `coach export-model` from training run `{run_id}` on {exported_at}.",
        "",
        "## Use",
        "",
        "```bash",
        f"ollama create {ollama_name} -f Modelfile && ollama run {ollama_name}",
        "```",
        "",
        f"Chat format: {family} (GGUF architecture `{architecture or '?'}`); context: {num_ctx:,} tokens.",
        "",
        "## Files",
        "",
        *(f"- {label}: `{file}`" for label, file in files),
        "",
        "## Base model",
        "",
        f"- `{base}`" + (f" ({base_model['source']})" if base_model.get("source") else ""),
        "",
        "## Training data",
        "",
        *_data(data),
        "",
        "## Training settings",
        "",
        *_settings(recipe, metrics, preset),
        "",
        "## Verification",
        "",
    ]
    if not verification.done:
        lines.append("Not verified (`--no-verify`).")
    else:
        status = "passed" if verification.ok else f"FAILED: {verification.reason}"
        lines += [
            f"llama.cpp loaded the GGUF and answered one message under the system prompt: {status}.",
            "",
            f"- message: {verification.prompt!r}",
            f"- reply: {verification.reply[:300]!r}",
        ]
    lines += ["", "## Evaluation", ""]
    if comparison:
        lines += [f"Latest comparison report in the workspace (`{comparison_source or '?'}`):", "", *comparison]
    else:
        lines.append("No comparison report in the workspace yet (`coach eval compare --base … --candidate GGUF`).")
    return "\n".join(lines) + "\n"
