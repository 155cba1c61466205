"""Training presets and plans: validation errors name the field, 4-bit without CUDA is refused unless
allowed, the 12B recipe turns into the TRL/PEFT/bitsandbytes objects it promises, and models that cannot
be found say so. Fast: nothing here loads a model."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.events import TrainingCheckpoint, TrainingData, TrainingProgress
from actors.training.models import resolve_model
from actors.training.presets import PresetError, get_preset, load_presets, parse_presets
from actors.training.recipe import TrainRequest, lora_config, plan_training, quantization_config, sft_config
from coach_tui.cli import main
from coach_tui.commands.train import TrainProgressView, export_model_cmd, train_cmd
from state.errors import CoachError
from state.store import Store

for command in (train_cmd, export_model_cmd):  # the lead registers them on `coach`; tests need them either way
    if command.name not in main.commands:
        main.add_command(command)

GOOD = {
    "model": "bundled:gemma3-270m",
    "dtype": "float32",
    "lora": {"r": 8, "alpha": 16},
    "max_length": 512,
    "training": {"learning_rate": 1e-3, "max_steps": 4},
}


def request(tmp_path: Path, **kw) -> TrainRequest:
    return TrainRequest(data=tmp_path / "train.jsonl", **kw)


# --- presets -------------------------------------------------------------------------------------


def test_bundled_presets_validate_and_the_12b_recipe_is_qlora():
    presets = load_presets()
    assert {"tiny", "gemma-3-12b"} <= set(presets)
    big = presets["gemma-3-12b"]
    assert big.model == "google/gemma-3-12b-it"
    q = big.quantization
    assert (q.bits, q.quant_type, q.double_quant, q.compute_dtype) == (4, "nf4", True, "bfloat16")
    assert big.lora.target_modules == "all-linear"
    t = big.training
    assert t.gradient_checkpointing and not t.packing
    assert (t.optim, t.lr_scheduler_type, t.per_device_train_batch_size) == ("paged_adamw_8bit", "cosine", 1)
    assert t.gradient_accumulation_steps > 1 and t.warmup_ratio > 0
    assert big.max_length >= 65536
    tiny = presets["tiny"]
    assert tiny.quantization is None and tiny.dtype == "float32" and tiny.model == "bundled:gemma3-270m"
    assert tiny.max_length <= 4096 and 0 < tiny.training.max_steps <= 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lora": {"rank": 8, "alpha": 16}}, "bad.lora.rank: unknown setting"),
        ({"lora": {"r": 0, "alpha": 16}}, "bad.lora.r: Input should be greater than 0"),
        ({"quantization": {"bits": 8}}, "bad.quantization.bits"),
        ({"training": {"learning_rate": 1e-3, "packing": True}}, "training.packing: must be false"),
        ({"training": {"learning_rate": 1e-3, "max_steps": 0}}, "bad.training.max_steps"),
        ({"training": {"learning_rate": 1e-3, "optim": "sgd-please"}}, "bad.training.optim"),
        ({"lora": {"r": 8, "alpha": 16, "exclude_modules": "(unclosed"}}, "not a regular expression"),
        ({"max_length": 8}, "bad.max_length"),
        ({"model": ""}, "bad.model"),
    ],
)
def test_a_bad_preset_names_the_preset_and_the_field(change, expected):
    with pytest.raises(PresetError) as err:
        parse_presets({"bad": {**GOOD, **change}}, "presets.yaml")
    assert expected in str(err.value)
    assert "presets.yaml" in str(err.value)


def test_every_problem_is_reported_at_once_and_yaml_errors_have_lines(tmp_path):
    with pytest.raises(PresetError) as err:
        parse_presets({"a": {**GOOD, "lora": {"r": -1, "alpha": 0}}, "b": "not a mapping"}, "p.yaml")
    text = str(err.value)
    assert "a.lora.r" in text and "a.lora.alpha" in text and "b: expected a mapping" in text
    broken = tmp_path / "presets.yaml"
    broken.write_text("tiny:\n  model: x\n  model: y\n")
    with pytest.raises(PresetError, match="line 3.*duplicate key 'model'"):
        load_presets(broken)
    with pytest.raises(PresetError, match="unknown training preset 'huge'.*gemma-3-12b.*tiny"):
        get_preset("huge")


# --- plans: what this machine can do ----------------------------------------------------------------


def test_4bit_without_cuda_is_refused_unless_allowed(tmp_path):
    with pytest.raises(CoachError) as err:
        plan_training(request(tmp_path, preset="gemma-3-12b"), cuda=False)
    assert "4-bit" in str(err.value) and "CUDA" in str(err.value) and "--allow-no-4bit" in str(err.value)

    plan = plan_training(request(tmp_path, preset="gemma-3-12b", allow_no_4bit=True), cuda=False)
    assert not plan.use_4bit and quantization_config(plan) is None
    assert plan.optim == "adamw_torch"  # paged 8-bit AdamW needs CUDA
    assert plan.attn_implementation == "sdpa"
    assert any("4-bit is impossible" in n for n in plan.notes)


def test_the_12b_plan_on_cuda_builds_qlora_objects(tmp_path):
    import torch

    plan = plan_training(request(tmp_path, preset="gemma-3-12b", steps=10, max_length=32768), cuda=True)
    assert plan.use_4bit and plan.optim == "paged_adamw_8bit" and plan.max_length == 32768 and plan.max_steps == 10
    bnb = quantization_config(plan)
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    lora = lora_config(plan)
    assert lora.target_modules == "all-linear" and lora.r == 16 and "vision_tower" in lora.exclude_modules
    # The SFTConfig proper: built with the CPU stand-in, since SFTConfig checks the device it runs on.
    cpu_plan = plan_training(request(tmp_path, preset="gemma-3-12b", allow_no_4bit=True, max_length=32768), cuda=False)
    args = sft_config(cpu_plan, tmp_path / "ckpt")
    assert args.gradient_checkpointing and args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert args.lr_scheduler_type == "cosine" and args.max_length == 32768 and not args.packing
    assert args.per_device_train_batch_size == 1 and args.gradient_accumulation_steps == 16
    assert args.bf16 and args.eos_token == "<end_of_turn>" and args.save_strategy == "steps"
    assert args.model_init_kwargs["dtype"] == "bfloat16"


def test_tiny_plan_takes_the_command_line_over_the_preset(tmp_path):
    plan = plan_training(
        request(tmp_path, model="/some/folder", max_length=256, steps=3, save_steps=1, over_length="drop"), cuda=False
    )
    assert (plan.model_ref, plan.max_length, plan.max_steps, plan.save_steps) == ("/some/folder", 256, 3, 1)
    assert plan.dtype == "float32" and not plan.use_4bit and plan.notes == ()
    with pytest.raises(CoachError, match="over-length"):
        plan_training(request(tmp_path, over_length="chop"), cuda=False)


def test_the_cli_refuses_4bit_on_a_cpu_before_loading_anything(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    if __import__("actors.training.models", fromlist=["cuda_available"]).cuda_available():
        pytest.skip("this machine has CUDA")
    Store.for_workspace(tmp_path / "ws").close()  # only run and import create a workspace
    result = CliRunner().invoke(
        main, ["-w", str(tmp_path / "ws"), "train", "--data", str(data), "--preset", "gemma-3-12b"]
    )
    assert result.exit_code == 1
    assert "needs a CUDA GPU" in result.output and "--allow-no-4bit" in result.output
    assert not (tmp_path / "ws" / "train").exists()


# --- models --------------------------------------------------------------------------------------


def test_a_hub_id_on_an_offline_machine_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Without --allow-download nothing is fetched, whatever the network.
    with pytest.raises(CoachError, match="not in the local Hugging Face cache; pass --allow-download"):
        resolve_model("google/gemma-3-12b-it")
    with pytest.raises(CoachError, match="'google/gemma-3-12b-it' is not in the local Hugging Face cache and HF_HUB"):
        resolve_model("google/gemma-3-12b-it", allow_download=True)
    # Online mode on a machine without a route out (here: the test suite's loopback guard) reads the same.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(CoachError, match="'google/gemma-3-12b-it'.*could not be downloaded"):
        resolve_model("google/gemma-3-12b-it", allow_download=True)


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(CoachError, match="holds no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(CoachError, match="no such folder, and not a Hugging Face model id"):
        resolve_model("./missing-model")
    with pytest.raises(CoachError, match="not a training target"):
        resolve_model("bundled:smollm2-135m-instruct")


def test_export_rejects_an_unknown_quantization_before_any_work():
    from actors.training.export import quant_ftype

    assert quant_ftype("q4_k_m") is not None and quant_ftype("F16") is None
    with pytest.raises(CoachError, match="unknown quantization 'Q3_Z'.*Q4_K_M"):
        quant_ftype("Q3_Z")


# --- the headless view ---------------------------------------------------------------------------


def test_the_progress_view_prints_one_line_per_event():
    lines: list[str] = []
    view = TrainProgressView(echo=lines.append)
    view.render(TrainingData(lines=["3 example(s)", "no example above the limit"]))
    view.render(TrainingProgress(run_id="r1", step=3, max_steps=8, loss=2.5, lr=1e-4, tokens_per_s=1234.0, eta_s=75.0))
    view.render(TrainingCheckpoint(run_id="r1", step=3, path="/x/checkpoint-3"))
    text = "\n".join(lines)
    assert "data: 3 example(s)" in text
    assert "step 3/8  loss 2.5000  lr 1.00e-04  1,234 tok/s  ETA 0:01:15" in text
    assert "checkpoint saved: /x/checkpoint-3" in text


# --- objective, validation split and reporting (issue 16) ------------------------------------------


def test_loss_validation_and_report_options_are_checked_before_anything_loads(tmp_path, monkeypatch):
    plan = plan_training(request(tmp_path, loss="last-reply", val_fraction=0.2, save_steps=5), cuda=False)
    assert plan.eval_steps == 5  # with each checkpoint by default
    assert plan.summary()["loss"] == "last-reply" and plan.summary()["val_fraction"] == 0.2
    args = sft_config(plan, tmp_path / "ckpt", evaluate=True)
    assert args.eval_strategy == "steps" and args.eval_steps == 5 and args.prediction_loss_only
    assert sft_config(plan, tmp_path / "ckpt").eval_strategy == "no"
    assert plan_training(request(tmp_path, eval_steps=3), cuda=False).eval_steps == 3
    with pytest.raises(CoachError, match="--loss"):
        plan_training(request(tmp_path, loss="everything"), cuda=False)
    with pytest.raises(CoachError, match="--val-fraction"):
        plan_training(request(tmp_path, val_fraction=1.0), cuda=False)
    with pytest.raises(CoachError, match="--report-to"):
        plan_training(request(tmp_path, report_to="wandb"), cuda=False)
    monkeypatch.setattr("actors.training.recipe.tensorboard_installed", lambda: False)
    with pytest.raises(CoachError, match="pip install tensorboard"):
        plan_training(request(tmp_path, report_to="tensorboard"), cuda=False)
    monkeypatch.setattr("actors.training.recipe.tensorboard_installed", lambda: True)
    plan = plan_training(request(tmp_path, report_to="tensorboard"), cuda=False)
    assert sft_config(plan, tmp_path / "ckpt").report_to == ["tensorboard"]


def test_the_cli_documents_and_validates_the_new_options(tmp_path):
    runner = CliRunner()
    text = runner.invoke(main, ["train", "--help"], terminal_width=200).output
    for words in ("--loss", "all-assistant", "last-reply", "once per slice", "--val-fraction", "--report-to"):
        assert words in text
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    base = ["-w", str(tmp_path / "ws"), "train", "--data", str(data)]
    Store.for_workspace(tmp_path / "ws").close()  # only run and import create a workspace
    for bad in (["--loss", "all"], ["--val-fraction", "1"], ["--val-fraction", "-0.1"], ["--report-to", "wandb"]):
        result = runner.invoke(main, [*base, *bad])
        assert result.exit_code == 2, (bad, result.output)
    if not __import__("actors.training.recipe", fromlist=["x"]).tensorboard_installed():
        result = runner.invoke(main, [*base, "--report-to", "tensorboard"])
        assert result.exit_code == 1 and "pip install tensorboard" in result.output
        assert not (tmp_path / "ws" / "train").exists()


def test_the_progress_view_prints_the_validation_loss():
    from actors.events import TrainingEval, event_from

    lines: list[str] = []
    TrainProgressView(echo=lines.append).render(TrainingEval(run_id="r1", step=4, max_steps=8, eval_loss=1.25))
    assert "step 4/8  validation loss 1.2500" in lines[0]
    assert isinstance(
        event_from("TrainingEval", "r1", payload={"step": 1, "max_steps": 2, "eval_loss": 0.5}), TrainingEval
    )
