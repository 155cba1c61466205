"""The whole loop on a CPU with the `tiny` preset (the bundled Gemma 3 270M): train a few steps, get killed
after a checkpoint, `--resume`, then merge, export to GGUF, quantize and chat with the result in llama.cpp.

One training of three short steps is shared by the tests below (module fixture); the first use of the
bundled model dequantizes it once into the cache (about a minute), later runs reuse it.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

import json
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from sqlmodel import select
from transformers import TrainerCallback

from actors.events import EventBus
from actors.training import records
from actors.training.recipe import TrainRequest, plan_training
from actors.training.trainer import TrainerActor
from coach_tui.cli import main
from coach_tui.commands.train import export_model_cmd, train_cmd
from state.models import Event, Run
from state.store import Store

pytestmark = pytest.mark.slow

for command in (train_cmd, export_model_cmd):  # the lead registers them on `coach`; tests need them either way
    if command.name not in main.commands:
        main.add_command(command)

SYSTEM = "You are a warm, practical self-care coach."
EXCHANGES = [
    ("I can't sleep before big meetings.", "That sounds draining. What goes through your mind at night?"),
    ("My sister keeps asking for money.", "It makes sense you feel torn. What would a fair limit be?"),
    ("I snapped at my partner again.", "Thank you for saying it. What happened just before?"),
    ("I want to walk in the mornings.", "A small start counts. Which morning could you try?"),
]


class KillAfterCheckpoint(TrainerCallback):
    """Stands in for `kill -9` right after the trainer wrote checkpoint N."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated kill after checkpoint")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = root / "training_data.jsonl"
    with open(data, "w") as fh:  # a small sliced set: every example ends on an assistant reply
        for i in range(len(EXCHANGES)):
            messages = [{"role": "system", "content": SYSTEM}]
            for user, reply in EXCHANGES[: i % 2 + 1] if i < 2 else EXCHANGES[i - 1 : i + 1]:
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    workspace = root / "ws"
    store = Store.for_workspace(workspace)
    # the last-reply objective and a validation split of one of the 3 conversations (by first user message)
    request = TrainRequest(data=data, preset="tiny", steps=3, save_steps=2, loss="last-reply", val_fraction=0.34)
    plan = plan_training(request, cuda=False)

    bus = EventBus()
    live: list = []
    errors: list[BaseException] = []
    actor = TrainerActor(store, bus, runs_root=workspace / "train")

    async def first_run():
        receive = bus.subscribe()

        async def collect():
            async with receive:
                async for ev in receive:
                    live.append(ev)

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            try:
                await actor.run(plan, extra_callbacks=[KillAfterCheckpoint(2)])
            except RuntimeError as err:
                errors.append(err)
            finally:
                bus.close()

    anyio.run(first_run)
    assert [str(e) for e in errors] == ["simulated kill after checkpoint"]
    killed = records.get_train_run(store)

    # the same command again, with --resume, through the command line
    resumed = CliRunner().invoke(
        main,
        [
            "-w",
            str(workspace),
            "train",
            "--data",
            str(data),
            "--preset",
            "tiny",
            "--steps",
            "3",
            "--save-steps",
            "2",
            "--loss",
            "last-reply",
            "--val-fraction",
            "0.34",
            "--resume",
        ],
    )
    return {"store": store, "workspace": workspace, "data": data, "live": live, "killed": killed, "resumed": resumed}


def test_a_killed_run_resumes_from_its_checkpoint_and_finishes(trained):
    killed, resumed, store = trained["killed"], trained["resumed"], trained["store"]
    assert killed.status == "failed" and "simulated kill" in killed.config["error"]
    run_dir = Path(killed.config["paths"]["run_dir"])
    assert (run_dir / "checkpoints" / "checkpoint-2").is_dir()

    assert resumed.exit_code == 0, resumed.output
    assert "resuming from checkpoint-2" in resumed.output
    assert f"run {killed.id} finished at step 3/3" in resumed.output
    assert "step 3/3  loss" in resumed.output and "tok/s" in resumed.output  # the headless progress view
    assert "data: training on " in resumed.output and "data: validation: " in resumed.output
    assert "--loss last-reply" in resumed.output and "step 3/3  validation loss" in resumed.output

    run = records.get_train_run(store, killed.id)
    assert run.status == "finished"
    cfg = run.config
    assert len(cfg["data"]["sha256"]) == 64 and cfg["data"]["report"]["kept"] == 4
    assert cfg["preset"] == "tiny" and cfg["recipe"]["device"] == "cpu" and cfg["recipe"]["quantization"] is None
    assert {"torch", "transformers", "peft", "trl"} <= set(cfg["versions"])
    assert (Path(cfg["paths"]["adapter"]) / "adapter_model.safetensors").is_file()
    m = cfg["metrics"]
    assert m["global_step"] == 3 and math.isfinite(m["train_loss"])
    # loss is finite and moves: steps 1-2 were logged by the killed run, step 3 by the resumed one
    with store.session() as s:
        progress = [
            e.payload for e in s.exec(select(Event).where(Event.run_id == run.id, Event.kind == "TrainingProgress"))
        ]
    losses = {p["step"]: p["loss"] for p in progress}
    assert set(losses) == {1, 2, 3} and all(math.isfinite(v) for v in losses.values())
    assert losses[3] != losses[1]
    # the validation loss: at the eval step (2, with the checkpoint) and at the end, stored with the losses
    val = records.loss_history(store, run.id, split="validation")
    assert [step for step, _ in val] == [2, 3] and all(math.isfinite(v) for _, v in val)
    assert m["last_val_loss"] == val[-1][1] and m["validation_examples"] >= 1
    assert cfg["recipe"]["loss"] == "last-reply" and cfg["data"]["report"]["validation"] >= 1
    assert all(p["lr"] > 0 and p["eta_s"] >= 0 and p["tokens_per_s"] > 0 for p in progress)
    # the same progress was published live on the bus while it trained
    assert [ev.data["step"] for ev in trained["live"] if ev.kind == "TrainingProgress"] == [1, 2]
    assert any(ev.kind == "TrainingCheckpoint" and ev.data["step"] == 2 for ev in trained["live"])


def test_without_resume_the_same_folder_is_not_overwritten(trained):
    run = records.get_train_run(trained["store"])
    result = CliRunner().invoke(
        main,
        [
            "-w",
            str(trained["workspace"]),
            "train",
            "--data",
            str(trained["data"]),
            "--steps",
            "1",
            "--out",
            run.config["paths"]["run_dir"],
        ],
    )
    assert result.exit_code == 1 and "already holds checkpoints: pass --resume" in result.output


def test_export_merges_converts_quantizes_and_answers_in_llama_cpp(trained, tmp_path):
    workspace, store = trained["workspace"], trained["store"]
    run = records.get_train_run(store)
    result = CliRunner().invoke(main, ["-w", str(workspace), "export-model", run.id, "--quant", "Q4_K_M"])
    # Three steps of LoRA on the base 270M do not make a model that answers: under the pack's long system
    # prompt it repeats that prompt, and the export says so (files written and recorded, exit 1).
    assert result.exit_code == 1, result.output
    assert "failed verification: the reply" in result.output and "system prompt" in result.output
    assert "verified: llama.cpp answered" not in result.output

    export = records.get_train_run(store, run.id).config["export"]
    gguf, f16 = Path(export["gguf"]), Path(export["gguf_f16"])
    assert gguf.name.endswith(".Q4_K_M.gguf") and gguf.is_file() and f16.is_file()
    assert gguf.stat().st_size < 0.7 * f16.stat().st_size  # really quantized
    assert (Path(export["merged"]) / "model.safetensors").is_file()
    assert export["verified"] is False and export["verify_problem"] and export["verify_reply"]
    assert export["chat_family"] == "gemma3" and Path(export["model_card"]).is_file()

    modelfile = Path(export["modelfile"]).read_text()
    assert f"FROM ./{gguf.name}" in modelfile
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile
    assert "<start_of_turn>model" in modelfile and "TEMPLATE" in modelfile
    assert "PARAMETER num_ctx 2048" in modelfile  # the tiny preset's length
    assert "ollama create therapy -f Modelfile" in modelfile and "ollama create therapy -f" in result.output
    assert "self-care coach" in modelfile  # the pack's system prompt

    # the GGUF answers a chat message through llama-cpp-python, with the template it carries
    from llama_cpp import Llama

    from actors.backends.model_cache import threads_from_environment

    threads = threads_from_environment()  # one per test worker (conftest), as the export's own check
    llm = Llama(model_path=str(gguf), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    assert llm.metadata["tokenizer.chat_template"].startswith("{{ bos_token }}")
    assert llm._model.token_get_text(llm.token_eos()) == "<end_of_turn>"
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": "I can't sleep before big meetings."}], max_tokens=16, temperature=0.0
    )
    assert reply["usage"]["completion_tokens"] >= 1
    llm.close()

    # and the printed run-config snippet selects it as the eval_target backend
    from actors.run_config import load_run_config

    snippet = result.output.split("(coach eval, the chat screen):", 1)[1].split("coach: error:", 1)[0]
    config_file = tmp_path / "run-config.yaml"
    config_file.write_text(snippet)
    config = load_run_config(config_file)
    assert config.problems() == []
    assert config.role("eval_target").backends == ("finetuned",)
    assert Path(config.backends["finetuned"].model) == gguf
    assert [m["run_id"] for m in records.exported_models(store)] == [run.id]
    with store.session() as s:
        assert s.exec(select(Event).where(Event.run_id == run.id, Event.kind == "ModelExported")).first()
        assert s.get(Run, run.id).config["export"]["quant"] == "Q4_K_M"
