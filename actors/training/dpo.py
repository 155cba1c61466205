"""`coach train --method dpo`: TRL's DPOTrainer on the preference pairs `coach slice --pairs` writes.

Data. Each line is TRL's conversational preference format — `prompt` (the
conversation up to a user message), `chosen` and `rejected` (one assistant
message each) — with the slicer's provenance beside it, which TRL ignores.
Every line is checked before anything loads, and every pair is measured with
the model's own chat template: prompt+chosen and prompt+rejected must both fit
`max_length`. TRL would otherwise cut the end of an over-long pair (its only
truncation keeps the start), losing the very replies being compared; here, as
for SFT, nothing is truncated silently: `--over-length drop` drops the pair,
`truncate-front` removes its oldest exchanges (system prompt kept). The
validation split holds out whole conversations (`transcript_id`), as for SFT.

Model. A new LoRA adapter on the preset's base, the base with the adapter
switched off serving as DPO's reference (TRL does this with PEFT, so no
second model is loaded); or, with `--from-adapter`, an SFT run's adapter
trained further, TRL copying it into a frozen "ref" adapter so the reference
is the SFT model itself — the usual SFT → DPO recipe. Either way the saved
adapter applies to the same base, so `coach export-model` merges and converts
it exactly as after SFT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.errors import CoachError

from .data import (
    DataError,
    Example,
    LengthReport,
    OverLength,
    PreparedData,
    apply_over_length,
    check_messages,
    clean_messages,
    example_group,
    front_cuts,
    read_jsonl,
    split_rows,
)
from .recipe import TrainPlan, lora_config, quantization_config, trainer_arguments


@dataclass(frozen=True)
class Pair:
    line: int
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    group: str  # the conversation it comes from, for the validation split


def _reply(value: Any, key: str) -> tuple[str | None, str | None]:
    """The assistant text of a `chosen`/`rejected` value (one assistant message, or a plain string)."""
    if isinstance(value, str):
        return (value, None) if value.strip() else (None, f"'{key}' is empty")
    if (
        isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], dict)
        and value[0].get("role") == "assistant"
        and isinstance(value[0].get("content"), str)
        and value[0]["content"].strip()
    ):
        return value[0]["content"], None
    return None, f"'{key}' must be one assistant message with text"


def check_pair(record: Any) -> tuple[Pair | None, str | None]:
    if not isinstance(record, dict):
        return None, "expected a JSON object"
    prompt = record.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        return None, "'prompt' must be a non-empty list of messages (coach slice --pairs writes them)"
    if not (isinstance(prompt[-1], dict) and prompt[-1].get("role") == "user"):
        return None, "'prompt' must end with a user message"
    # the prompt plus a reply must be a conversation the chat template renders
    reason = check_messages([*prompt, {"role": "assistant", "content": "x"}])
    if reason:
        return None, f"prompt: {reason}"
    chosen, why = _reply(record.get("chosen"), "chosen")
    if why:
        return None, why
    rejected, why = _reply(record.get("rejected"), "rejected")
    if why:
        return None, why
    if chosen == rejected:
        return None, "'chosen' and 'rejected' are the same reply"
    clean = clean_messages(prompt)
    return Pair(0, clean, chosen, rejected, example_group(record, clean)), None


def _numbered_pair(number: int, record: Any) -> tuple[Pair | None, str | None]:
    if isinstance(record, dict) and "messages" in record and "prompt" not in record:
        return None, ("an SFT example ('messages'), not a preference pair: write pairs with coach slice --pairs FILE")
    pair, reason = check_pair(record)
    if reason:
        return None, reason
    return Pair(number, pair.prompt, pair.chosen, pair.rejected, pair.group), None


def read_pairs(path: Path) -> list[Pair]:
    """Every line of a preference-pairs file, validated; all problems at once (the first 20)."""
    pairs = read_jsonl(path, _numbered_pair, missing="preference pairs not found")
    if not pairs:
        raise DataError(f'{path}: no preference pairs (expected one {{"prompt", "chosen", "rejected"}} per line)')
    return pairs


class PairReport(LengthReport):
    """The length report of a pairs file: a pair's length is its longer side, prompt included."""

    unit = "pair"
    limit_per = "per side of a pair"

    def training_line(self) -> str:
        return (
            f"training on {self.kept - self.validation} preference pair(s), {self.total_tokens:,} tokens in "
            f"all (longer side of each), {self.trained_tokens:,} reply tokens compared (DPO)"
        )


def _count(tokenizer: Any, messages: Sequence[dict]) -> int:
    out = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True)
    return len(out["input_ids"])


def measure(tokenizer: Any, prompt: Sequence[dict], chosen: str, rejected: str) -> tuple[int, int, int]:
    """(prompt tokens, prompt+chosen tokens, prompt+rejected tokens) under the tokenizer's chat template."""
    head = tokenizer.apply_chat_template(list(prompt), tokenize=True, return_dict=True, add_generation_prompt=True)
    full = [_count(tokenizer, [*prompt, {"role": "assistant", "content": r}]) for r in (chosen, rejected)]
    return len(head["input_ids"]), full[0], full[1]


def _truncate_front(tokenizer: Any, pair: Pair, max_length: int) -> tuple[Pair, int, tuple[int, int, int]] | None:
    """`pair` without its fewest oldest exchanges so both sides fit; None when even the last user message is too long."""
    for removed, prompt in front_cuts(pair.prompt):
        sizes = measure(tokenizer, prompt, pair.chosen, pair.rejected)
        if max(sizes[1:]) <= max_length:
            return Pair(pair.line, prompt, pair.chosen, pair.rejected, pair.group), removed, sizes
    return None


def prepare_pairs(
    path: Path,
    tokenizer: Any,
    max_length: int,
    over_length: OverLength | None,
    *,
    val_fraction: float | None = 0.0,
    seed: int = 42,
) -> PreparedData:
    """Read, measure, apply the over-length policy and split by conversation; rows are TRL's conversational pairs."""
    pairs = read_pairs(path)
    report = PairReport(examples=len(pairs), max_length=max_length, loss="dpo")

    def sides(pair: Pair) -> tuple[tuple[int, int, int], int]:
        sizes = measure(tokenizer, pair.prompt, pair.chosen, pair.rejected)
        return sizes, max(sizes[1:])

    def cut(pair: Pair):
        return _truncate_front(tokenizer, pair, max_length)

    kept = apply_over_length(pairs, sides, cut, report, over_length)
    if not kept:
        raise DataError("no preference pair is left after the over-length policy:\n" + "\n".join(report.lines()))
    rows = []
    for pair, (prompt_tokens, with_chosen, with_rejected) in kept:
        example = Example(pair.line, [*pair.prompt, {"role": "assistant", "content": pair.chosen}], pair.group)
        row = {
            "prompt": pair.prompt,
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        rows.append((example, row))
        report.kept += 1
        report.total_tokens += max(with_chosen, with_rejected)
        report.trained_tokens += (with_chosen - prompt_tokens) + (with_rejected - prompt_tokens)
    return split_rows(path, rows, report, val_fraction, seed, what="preference pair")


def pairs_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def dpo_config(plan: TrainPlan, output_dir: Path, *, evaluate: bool = False, model_given: bool = False):
    """The run's `DPOConfig`: the shared arguments, DPO's beta, and the length every pair was measured against."""
    from trl import DPOConfig

    args = trainer_arguments(plan, output_dir, evaluate=evaluate)
    if model_given:  # the model is loaded here (an adapter to continue), not by the trainer
        args["model_init_kwargs"] = None
    return DPOConfig(**args, max_length=plan.max_length, beta=plan.beta)


def check_adapter_base(adapter: Path, resolved) -> None:
    """Refuse an adapter trained on another base: merged into this one it would be meaningless."""
    config_file = Path(adapter) / "adapter_config.json"
    if not config_file.is_file():
        raise CoachError(f"--from-adapter {adapter}: no adapter_config.json there (give a trained LoRA adapter folder)")
    base = str(json.loads(config_file.read_text()).get("base_model_name_or_path") or "")
    same = base in (str(resolved.path), resolved.reference)
    if not same and base and Path(base).exists():
        same = Path(base).resolve() == Path(resolved.path).resolve()
    if not same:
        raise CoachError(
            f"--from-adapter {adapter} was trained on the base {base or '(unknown)'}, and this run's base is "
            f"{resolved.reference} ({resolved.path}); pass the preset or --model that adapter was trained with"
        )


def load_with_adapter(plan: TrainPlan, base_path: Path, adapter: Path):
    """The base (4-bit for QLoRA), with `adapter` loaded trainable: the policy DPO or GRPO continues from."""
    from peft import PeftModel, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from .recipe import model_init_kwargs

    quant = quantization_config(plan)
    model = AutoModelForCausalLM.from_pretrained(
        str(base_path), **model_init_kwargs(plan), **({"quantization_config": quant} if quant else {})
    )
    if quant is not None:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan.preset.training.gradient_checkpointing
        )
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)


def make_trainer(plan: TrainPlan, resolved, tokenizer, data: PreparedData, checkpoints: Path, callbacks: list):
    """One `DPOTrainer`: a new LoRA on the base (reference: the adapter switched off), or the SFT adapter continued."""
    from trl import DPOTrainer

    train = pairs_dataset(data.rows)
    evaluate = pairs_dataset(data.val_rows) if data.val_rows else None
    adapter = plan.request.from_adapter
    if adapter is not None:
        check_adapter_base(adapter, resolved)
        model = load_with_adapter(plan, resolved.path, adapter)
        extra = {}
    else:
        model = str(resolved.path)
        extra = {"peft_config": lora_config(plan), "quantization_config": quantization_config(plan)}
    return DPOTrainer(
        model=model,
        args=dpo_config(plan, checkpoints, evaluate=evaluate is not None, model_given=adapter is not None),
        train_dataset=train,
        eval_dataset=evaluate,
        processing_class=tokenizer,
        callbacks=callbacks,
        **extra,
    )
