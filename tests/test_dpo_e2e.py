"""DPO on the CPU with the `tiny` preset: two steps from an SFT adapter, killed after the first checkpoint and
resumed, then exported to a GGUF that answers in llama.cpp — the SFT path (tests/test_train_e2e.py) with pairs."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

import json
import math
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from actors.training import records
from actors.training.recipe import TrainRequest, plan_training
from actors.training.trainer import TrainerActor
from coach_tui.cli import main
from coach_tui.commands.train import export_model_cmd, train_cmd
from state.store import Store
from tests.test_train_e2e import EXCHANGES, SYSTEM, KillAfterCheckpoint

pytestmark = pytest.mark.slow

for command in (train_cmd, export_model_cmd):  # the lead registers them on `coach`; tests need them either way
    if command.name not in main.commands:
        main.add_command(command)

WORSE = ["Just take a pill.", "Cut her off.", "You have anger issues.", "Walking is boring."]


def write_pairs(path: Path) -> Path:
    with open(path, "w") as fh:
        for i, ((user, good), bad) in enumerate(zip(EXCHANGES, WORSE, strict=True)):
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            record = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
                "transcript_id": f"t{i}",
            }
            fh.write(json.dumps(record) + "\n")
    return path


def sft_adapter(folder: Path) -> Path:
    """A LoRA adapter on the tiny preset's base, as an SFT run leaves one (untrained: LoRA starts as the identity)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from actors.training.models import resolve_model

    base = resolve_model("bundled:gemma3-270m", note=lambda m: None).path
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.save_pretrained(folder)
    return folder


def test_dpo_from_an_sft_adapter_resumes_and_exports_a_gguf_that_answers(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    adapter = sft_adapter(tmp_path / "sft-adapter")
    workspace = tmp_path / "ws"
    store = Store.for_workspace(workspace)
    request = TrainRequest(data=data, preset="tiny", steps=2, save_steps=1, method="dpo", from_adapter=adapter)
    actor = TrainerActor(store, None, runs_root=workspace / "train")

    async def killed_after_first_checkpoint():
        with pytest.raises(RuntimeError, match="simulated kill"):
            await actor.run(plan_training(request, cuda=False), extra_callbacks=[KillAfterCheckpoint(1)])

    anyio.run(killed_after_first_checkpoint)
    killed = records.get_train_run(store)
    assert killed.status == "failed" and killed.config["recipe"]["method"] == "dpo"

    args = ["-w", str(workspace), "train", "--data", str(data), "--method", "dpo", "--steps", "2"]
    resumed = CliRunner().invoke(main, [*args, "--save-steps", "1", "--from-adapter", str(adapter), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "DPO (beta 0.1)" in resumed.output and "resuming from checkpoint-1" in resumed.output
    assert "training on 4 preference pair(s)" in resumed.output
    assert f"run {killed.id} finished at step 2/2" in resumed.output

    run = records.get_train_run(store, killed.id)
    m = run.config["metrics"]
    assert m["method"] == "dpo" and m["global_step"] == 2 and math.isfinite(m["train_loss"])
    assert 0 <= m["last_reward_accuracy"] <= 1 and math.isfinite(m["last_reward_margin"])
    saved = Path(run.config["paths"]["adapter"])
    # the SFT adapter was continued, and TRL kept a frozen copy of it as DPO's reference
    assert (saved / "adapter_model.safetensors").is_file() and (saved / "ref" / "adapter_config.json").is_file()

    # Like SFT's few steps, two DPO steps do not teach the base 270M to answer well: the export's own check
    # (load the GGUF, ask one message, judge the reply) passes or fails by chance, so it is skipped here and the
    # test asks the GGUF itself below; tests/test_train_e2e.py covers the check.
    exported = CliRunner().invoke(
        main, ["-w", str(workspace), "export-model", run.id, "--quant", "Q8_0", "--no-verify"]
    )
    assert exported.exit_code == 0, exported.output
    gguf = Path(records.get_train_run(store, run.id).config["export"]["gguf"])
    assert gguf.name.endswith(".Q8_0.gguf") and gguf.is_file()

    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=512, verbose=False)
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": EXCHANGES[0][0]}], max_tokens=8, temperature=0.0
    )
    llm.close()
    assert reply["usage"]["completion_tokens"] >= 1
