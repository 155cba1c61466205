"""DPO and GRPO data and options, checked before any model loads (fast: no torch training, no model)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from actors.training.data import DataError, OverLengthError
from actors.training.dpo import prepare_pairs, read_pairs
from actors.training.grpo import prepare_prompts, read_prompts
from actors.training.recipe import TrainRequest, plan_training
from coach_tui.cli import main
from coach_tui.commands.train import train_cmd
from state.errors import CoachError
from state.store import Store

if train_cmd.name not in main.commands:  # the lead registers it on `coach`; tests need it either way
    main.add_command(train_cmd)

SYSTEM = {"role": "system", "content": "Be a coach."}


def pair(i: int, history: int = 0) -> dict:
    prompt = [SYSTEM]
    for n in range(history):
        prompt += [{"role": "user", "content": f"old {n} " * 5}, {"role": "assistant", "content": f"reply {n} " * 5}]
    prompt.append({"role": "user", "content": f"question {i}"})
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": "a kind and useful answer"}],
        "rejected": [{"role": "assistant", "content": "no"}],
        "transcript_id": f"t{i}",
    }


def write(path, records) -> object:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class WordTokenizer:
    """Stands in for a chat-templated tokenizer: one token per word, plus two per message."""

    def apply_chat_template(self, messages, tokenize=True, return_dict=True, add_generation_prompt=False):
        ids = [0] * (sum(2 + len(m["content"].split()) for m in messages) + (2 if add_generation_prompt else 0))
        return {"input_ids": ids}


def test_a_pairs_file_is_checked_line_by_line(tmp_path):
    bad = pair(2)
    bad["chosen"] = bad["rejected"]
    sft = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    no_user = pair(3)
    no_user["prompt"] = [SYSTEM]
    path = write(tmp_path / "pairs.jsonl", [pair(1), bad, sft, no_user])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    text = str(err.value)
    assert "3 unusable line(s)" in text and "line 2: 'chosen' and 'rejected' are the same reply" in text
    assert "line 3: an SFT example ('messages'), not a preference pair: write pairs with coach slice --pairs" in text
    assert "line 4: 'prompt' must end with a user message" in text


def test_over_long_pairs_stop_the_run_unless_told_to_drop_or_trim(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [pair(1), pair(2, history=3)])
    tokenizer = WordTokenizer()
    with pytest.raises(OverLengthError, match="nothing is truncated silently"):
        prepare_pairs(path, tokenizer, 30, None)
    dropped = prepare_pairs(path, tokenizer, 30, "drop")
    assert len(dropped.rows) == 1 and dropped.report.dropped == 1
    trimmed = prepare_pairs(path, tokenizer, 30, "truncate-front")
    assert len(trimmed.rows) == 2 and trimmed.report.truncated == 1
    kept = trimmed.rows[1]["prompt"]
    assert kept[0] == SYSTEM and kept[-1]["content"] == "question 2" and len(kept) < len(pair(2, 3)["prompt"])
    assert "training on 2 preference pair(s)" in "\n".join(trimmed.report.lines())


def test_grpo_prompts_leave_room_for_the_completion_and_follow_the_over_length_policy(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [pair(1), pair(2, history=3)])
    tokenizer = WordTokenizer()  # pair(1)'s prompt is 11 tokens, pair(2, 3)'s 83
    with pytest.raises(OverLengthError, match="nothing is truncated silently"):
        prepare_prompts(path, tokenizer, 40, None, completion_tokens=10)
    dropped = prepare_prompts(path, tokenizer, 40, "drop", completion_tokens=10)
    assert len(dropped.rows) == 1 and (dropped.report.over, dropped.report.dropped) == (1, 1)
    trimmed = prepare_prompts(path, tokenizer, 40, "truncate-front", completion_tokens=10)
    assert (trimmed.report.truncated, trimmed.report.exchanges_removed) == (1, 3)  # 59, then 35, then 11 fit 30
    assert trimmed.rows[1]["prompt"] == [SYSTEM, {"role": "user", "content": "question 2"}]
    assert trimmed.report.longest == 93 and trimmed.report.total_tokens == 22  # the prompts, not their completions


def test_grpo_takes_the_distinct_prompts_of_either_file(tmp_path):
    sft = {"messages": [SYSTEM, {"role": "user", "content": "question 1"}, {"role": "assistant", "content": "x"}]}
    path = write(tmp_path / "mixed.jsonl", [pair(1), sft, pair(2)])
    prompts = read_prompts(path)
    assert [p.messages[-1]["content"] for p in prompts] == ["question 1", "question 2"]  # the same prompt once
    assert all(p.messages[-1]["role"] == "user" for p in prompts)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"from_adapter": "adapter"}, "--from-adapter continues an SFT adapter with --method dpo or grpo"),
        ({"method": "dpo", "generations": 4}, "are for --method grpo"),
        ({"method": "dpo", "loss": "last-reply"}, "--loss applies to --method sft"),
        ({"method": "dpo", "beta": 0.0}, "--beta must be above 0 for DPO"),
        ({"method": "ppo"}, "--method must be one of sft, dpo, grpo"),
    ],
)
def test_method_options_that_cannot_work_are_refused_by_name(tmp_path, fields, message):
    with pytest.raises(CoachError, match=message):
        plan_training(TrainRequest(data=tmp_path / "x.jsonl", **fields), cuda=False)


def test_the_command_names_the_mistake_before_any_model_loads(tmp_path):
    workspace = tmp_path / "ws"
    Store.for_workspace(workspace).close()
    examples = write(tmp_path / "train.jsonl", [{"messages": [SYSTEM, {"role": "user", "content": "hi"}]}])
    runner = CliRunner()
    result = runner.invoke(main, ["-w", str(workspace), "train", "--data", str(examples), "--method", "dpo"])
    assert result.exit_code == 1 and "line 1: an SFT example ('messages'), not a preference pair" in result.output
    assert "Traceback" not in result.output
    pairs = write(tmp_path / "pairs.jsonl", [pair(1)])
    args = ["-w", str(workspace), "train", "--data", str(pairs), "--method", "dpo"]
    result = runner.invoke(main, [*args, "--from-adapter", "no-such-run"])
    assert result.exit_code == 1
    assert "--from-adapter no-such-run: neither an adapter folder nor a training run" in result.output
    result = runner.invoke(main, [*args[:-1], "grpo", "--reward-criteria", "MT4"])
    assert result.exit_code == 1 and "MT4 (needs 3 exchanges) cannot be judged on one reply" in result.output
