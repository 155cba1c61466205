"""Data-parallel training: two CPU processes (gloo), one training.

On GPUs `accelerate launch --multi_gpu` starts the ranks; on CPUs accelerate
needs MPI, so this test starts them with `torch.distributed.run` (torchrun),
the launcher accelerate itself uses for GPUs: the ranks see the same
environment (WORLD_SIZE, RANK, LOCAL_RANK) either way.

The model is a tiny randomly initialised Gemma 3 built here (two layers, a
word-level vocabulary of the test's own words), so the two processes start
and train two steps in seconds; what is tested is the bookkeeping of ranks,
not what the model learns: both processes trained together, and the run was
recorded once and its adapter saved once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from state.store import Store
from state.training_records import training_runs
from tests.conftest import free_port
from tests.test_train_e2e import EXCHANGES, SYSTEM

pytestmark = pytest.mark.slow

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def tiny_gemma(folder: Path) -> Path:
    """A two-layer Gemma 3 text model with a word-level tokenizer over the test's words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    words = sorted(
        {w for text in [SYSTEM, *[t for pair in EXCHANGES for t in pair], "user model"] for w in text.split()}
    )
    vocab = {token: i for i, token in enumerate([*SPECIAL, *words, "\n"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    config = Gemma3TextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_two_cpu_processes_train_one_run_and_save_one_adapter(tmp_path: Path):
    model = tiny_gemma(tmp_path / "tiny-gemma")
    data = tmp_path / "training_data.jsonl"
    with open(data, "w") as fh:
        for user, reply in EXCHANGES * 2:
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            fh.write(json.dumps({"messages": [*messages, {"role": "assistant", "content": reply}]}) + "\n")
    workspace = tmp_path / "ws"
    Store.for_workspace(workspace)  # training reads examples into a workspace that exists
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COACH_LLAMA_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
         "-m", "coach_tui", "-w", str(workspace), "train",
         "--data", str(data), "--model", str(model), "--steps", "2", "--save-steps", "2", "--max-length", "128"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    store = Store.for_workspace(workspace)
    runs = training_runs(store)
    assert len(runs) == 1, [r.id for r in runs]  # one training, recorded once
    run = runs[0]
    assert run.status == "finished"
    assert run.config["metrics"]["processes"] == 2  # both ranks trained together
    assert run.config["metrics"]["global_step"] == 2
    adapters = [p.parent for p in workspace.rglob("adapter_model.safetensors") if "checkpoints" not in p.parts]
    assert adapters == [Path(run.config["paths"]["adapter"])]  # saved once, by the main rank
