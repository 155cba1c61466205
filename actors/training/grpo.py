"""`coach train --method grpo`: TRL's GRPOTrainer, rewarded by the judge on the rubric (`rubric_reward`).

Prompts. GRPO needs only the conversation up to a user message; the model
writes the replies. Either file `coach slice` writes gives them: a pairs file
(`prompt`) or an examples file (`messages`, its final reply removed).
Identical prompts are kept once. Every prompt must leave room for a sampled
completion: prompt tokens + `--completion-tokens` within `max_length`, with
the same over-length policy as the other methods.

Batch. GRPO compares the completions of one prompt, so the completions a step
generates (batch × gradient accumulation) must be a multiple of
`--generations`; the tiny preset's batch of 1 becomes one prompt × its
generations per step, and the run says so.

Cost. Every step samples `generations` completions per prompt and judges each
on every reward criterion: `batch × accumulation × criteria` judge calls per
step at most (fewer when completions repeat: the reward caches by context and
reply). The README's GRPO section has figures for a hosted judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from .recipe import DEFAULT_COMPLETION_TOKENS, DEFAULT_GENERATIONS, TrainPlan, lora_config, quantization_config

Note = Callable[[str], None]


def completion_tokens(plan: TrainPlan) -> int:
    return plan.request.completion_tokens or DEFAULT_COMPLETION_TOKENS


def generations(plan: TrainPlan) -> int:
    return plan.request.generations or DEFAULT_GENERATIONS


def _prompt_of(record: Any) -> tuple[list[dict] | None, str | None]:
    if not isinstance(record, dict):
        return None, "expected a JSON object"
    if "prompt" in record:
        prompt = record["prompt"]
        if not isinstance(prompt, list) or not prompt or not isinstance(prompt[-1], dict):
            return None, "'prompt' must be a non-empty list of messages"
        if prompt[-1].get("role") != "user":
            return None, "'prompt' must end with a user message"
        reason = check_messages([*prompt, {"role": "assistant", "content": "x"}])
        return (None, f"prompt: {reason}") if reason else (prompt, None)
    messages = record.get("messages")
    reason = check_messages(messages)
    if reason:
        return None, reason
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return messages, None


def read_prompts(path: Path) -> list[Example]:
    """The distinct prompts of a pairs or examples file, each as an `Example` (its messages end on a user turn)."""
    seen: set[str] = set()

    def parse(number: int, record: Any) -> tuple[Example | None, str | None]:
        prompt, reason = _prompt_of(record)
        if reason:
            return None, reason
        clean = clean_messages(prompt)
        key = json.dumps(clean, ensure_ascii=False)
        if key in seen:
            return None, None
        seen.add(key)
        return Example(number, clean, example_group(record, clean)), None

    prompts = read_jsonl(path, parse, missing="training data not found")
    if not prompts:
        raise DataError(f"{path}: no prompts (expected coach slice's examples or preference pairs)")
    return prompts


class PromptReport(LengthReport):
    """The length report of GRPO's prompts: a prompt's length leaves room for its sampled completion."""

    unit = "prompt"
    limit_per = "per prompt and its completion"

    def training_line(self) -> str:
        return (
            f"training on {self.kept - self.validation} prompt(s), {self.total_tokens:,} prompt tokens in all; "
            "completions are sampled and rewarded by the judge (GRPO)"
        )


def _prompt_tokens(tokenizer: Any, messages: list[dict]) -> int:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True)
    return len(out["input_ids"])


def prepare_prompts(
    path: Path,
    tokenizer: Any,
    max_length: int,
    over_length: OverLength | None,
    *,
    completion_tokens: int,
    val_fraction: float | None = 0.0,
    seed: int = 42,
) -> PreparedData:
    """Read the prompts, check each leaves room for a completion, split by conversation; rows are `{"prompt"}`."""
    prompts = read_prompts(path)
    budget = max_length - completion_tokens
    if budget < 16:
        raise DataError(f"--completion-tokens {completion_tokens} leaves no room for a prompt in {max_length} tokens")
    report = PromptReport(examples=len(prompts), max_length=max_length, loss="grpo")

    def measure(example: Example) -> tuple[int, int]:
        size = _prompt_tokens(tokenizer, example.messages) + completion_tokens
        return size, size

    def cut(example: Example):
        shorter = _truncate_front(tokenizer, example, budget)
        return None if shorter is None else (shorter[0], shorter[1], shorter[2] + completion_tokens)

    kept = apply_over_length(prompts, measure, cut, report, over_length)
    if not kept:
        raise DataError("no prompt is left after the over-length policy:\n" + "\n".join(report.lines()))
    rows = []
    for example, size in kept:
        rows.append((example, {"prompt": example.messages}))
        report.kept += 1
        report.total_tokens += size - completion_tokens
    return split_rows(path, rows, report, val_fraction, seed, what="prompt")


def _truncate_front(tokenizer: Any, example: Example, budget: int):
    for removed, messages in front_cuts(example.messages):
        size = _prompt_tokens(tokenizer, messages)
        if size <= budget:
            return Example(example.line, messages, example.group), removed, size
    return None


def grpo_config(plan: TrainPlan, output_dir: Path, *, evaluate: bool, model_given: bool, note: Note):
    """The run's `GRPOConfig`: the shared arguments, a batch that is a multiple of the generations, sampling."""
    from trl import GRPOConfig

    from .recipe import trainer_arguments

    args = trainer_arguments(plan, output_dir, evaluate=evaluate)
    if model_given:
        args["model_init_kwargs"] = None
    g = generations(plan)
    batch, accumulation = args["per_device_train_batch_size"], args["gradient_accumulation_steps"]
    if (batch * accumulation) % g:
        args["per_device_train_batch_size"] = g
        args["per_device_eval_batch_size"] = g
        note(
            f"GRPO: {batch} × {accumulation} completions per step is not a multiple of --generations {g}; "
            f"using a batch of {g} (one prompt and its {g} completions per step)"
        )
    return GRPOConfig(
        **args,
        num_generations=g,
        max_completion_length=completion_tokens(plan),
        beta=plan.beta,
        temperature=1.0,
        log_completions=False,
        # the judge reads only `prompt` and the completions; provenance columns are not the model's inputs
        remove_unused_columns=True,
    )


def make_trainer(plan: TrainPlan, resolved, tokenizer, data: PreparedData, run_dir: Path, callbacks: list, *, note):
    """One `GRPOTrainer` with the rubric reward on the run config's judge; `trainer.coach_reward` is closed after."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from actors.pack.loader import load_pack

    from .dpo import check_adapter_base, load_with_adapter
    from .rubric_reward import RubricReward

    pack = load_pack(plan.request.domain, check_rubric_doc=False)
    reward = RubricReward.from_run_config(pack, plan.request.run_config, criteria=plan.request.reward_criteria)
    try:
        note(
            f"reward: the judge ({', '.join(reward.judges)}) on {len(reward.criteria)} single-reply criteria "
            f"({', '.join(c.id for c in reward.criteria)}); a failed safety gate scores 0"
        )
        adapter = plan.request.from_adapter
        if adapter is not None:
            check_adapter_base(adapter, resolved)
            model, extra = load_with_adapter(plan, resolved.path, adapter), {}
        else:
            model = str(resolved.path)
            extra = {"peft_config": lora_config(plan), "quantization_config": quantization_config(plan)}
        args = grpo_config(
            plan,
            run_dir / "checkpoints",
            evaluate=bool(data.val_rows),
            model_given=adapter is not None,
            note=note,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=Dataset.from_list(data.rows),
            eval_dataset=Dataset.from_list(data.val_rows) if data.val_rows else None,
            processing_class=tokenizer,
            callbacks=callbacks,
            **extra,
        )
    except BaseException:
        reward.close()
        raise
    trainer.coach_reward = reward
    return trainer
