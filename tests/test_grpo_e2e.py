"""GRPO on the CPU with the `tiny` preset and the bundled judge: two steps, each sampling two short completions
of one prompt and rewarding them on the rubric (the safety gates only, to keep it short), then exported to a
GGUF that answers in llama.cpp.

The reward's judge is the bundled Gemma 3 270M, named by a run config (`--run-config`,
test_pack_eval_compare.judge_on_gemma): its judge calls are nearly all prompt to read, which Gemma does in
about half SmolLM2's time on a CPU."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.training import records
from coach_tui.cli import main
from coach_tui.commands.train import export_model_cmd, train_cmd
from state.models import Event
from state.store import Store
from tests.test_dpo_e2e import write_pairs
from tests.test_pack_eval_compare import judge_on_gemma
from tests.test_train_e2e import EXCHANGES

pytestmark = pytest.mark.slow

for command in (train_cmd, export_model_cmd):  # the lead registers them on `coach`; tests need them either way
    if command.name not in main.commands:
        main.add_command(command)


def test_grpo_with_the_rubric_reward_trains_and_exports_a_gguf_that_answers(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")  # GRPO takes the prompts of a pairs (or examples) file
    workspace = tmp_path / "ws"
    Store.for_workspace(workspace).close()
    args = ["-w", str(workspace), "train", "--data", str(data), "--method", "grpo", "--steps", "2"]
    config = judge_on_gemma(tmp_path)
    options = ["--generations", "2", "--completion-tokens", "8", "--reward-criteria", "CQ8"]
    trained = CliRunner().invoke(main, [*args, *options, "--run-config", str(config)])
    assert trained.exit_code == 0, trained.output
    assert "GRPO with the rubric reward" in trained.output
    assert "reward: the judge (gemma) on 2 single-reply criteria (CQ8, CQ9)" in trained.output
    assert "using a batch of 2 (one prompt and its 2 completions per step)" in trained.output

    store = Store.for_workspace(workspace)
    run = records.get_train_run(store)
    m = run.config["metrics"]
    assert run.status == "finished" and m["method"] == "grpo" and m["global_step"] == 2
    assert 0 <= m["last_reward"] <= 1 and math.isfinite(m["train_loss"])
    with store.session() as s:
        steps = [
            e.payload for e in s.exec(select(Event).where(Event.run_id == run.id, Event.kind == "TrainingProgress"))
        ]
    assert [p["step"] for p in steps] == [1, 2] and all(0 <= p["reward"] <= 1 for p in steps)
    assert (Path(run.config["paths"]["adapter"]) / "adapter_model.safetensors").is_file()

    # --no-verify: the export's own check (load the GGUF, ask one message, judge the reply) would fail or pass
    # by chance after two steps, and the test asks the GGUF itself below; tests/test_train_e2e.py covers the check.
    exported = CliRunner().invoke(
        main, ["-w", str(workspace), "export-model", run.id, "--quant", "Q8_0", "--no-verify"]
    )
    assert exported.exit_code == 0, exported.output
    gguf = Path(records.get_train_run(store, run.id).config["export"]["gguf"])
    assert gguf.is_file()

    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=512, verbose=False)
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": EXCHANGES[0][0]}], max_tokens=8, temperature=0.0
    )
    llm.close()
    assert reply["usage"]["completion_tokens"] >= 1
