"""benchmarks/bench_train_gpu.py --method dpo: the synthetic pairs have exactly the asked length, and the
tiny dry run on the CPU trains DPO end to end (two lengths: the adapter is removed and added again between
them) and writes the JSON a GPU session will commit."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see models.calm_cpu_threads

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train_gpu", ROOT / "benchmarks" / "bench_train_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_pair_tokenizer_maps_each_word_to_its_id():
    pytest.importorskip("transformers")
    tokenizer = bench.pair_tokenizer(300)
    assert tokenizer("t8 t299 t42")["input_ids"] == [8, 299, 42]
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1 and tokenizer.bos_token_id == 2


@pytest.mark.parametrize("length", [16, 64, 257, 4096])
def test_pairs_are_exactly_the_asked_length_per_side(length):
    pytest.importorskip("transformers")
    tokenizer = bench.pair_tokenizer(1000)
    pairs = bench.make_pairs(tokenizer, length, rows=2, vocab=1000, seed=length)
    assert len(pairs) == 2
    for pair in pairs:
        assert pair["chosen"] != pair["rejected"]
        prompt = pair["prompt"]
        head = tokenizer.apply_chat_template(prompt, tokenize=True, return_dict=True, add_generation_prompt=True)
        head = head["input_ids"]
        for side in ("chosen", "rejected"):
            full = tokenizer.apply_chat_template([*prompt, *pair[side]], tokenize=True, return_dict=True)["input_ids"]
            assert len(full) == length
            assert full[: len(head)] == head  # TRL splits prompt and reply where they diverge: here, at the reply
            assert 3 not in full  # no <unk>: every word is in the vocabulary
        assert len(full) - len(head) == max(1, length // bench.REPLY_SHARE - 1) + 1  # the reply and its end of turn


def test_without_cuda_the_dpo_benchmark_says_so_and_passes(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the benchmark would run for real")
    assert bench.main(["--method", "dpo"]) == 0
    out = capsys.readouterr().out
    assert "no CUDA GPU here" in out and "DPO" in out


def test_bad_lengths_are_one_clear_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--method", "dpo", "--lengths", "16K"])
    assert exit_info.value.code == 2
    assert "--lengths '16K'" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_dpo_dry_run_writes_the_results(tmp_path, capsys):
    for name in ("torch", "trl", "peft", "bitsandbytes", "datasets"):
        pytest.importorskip(name)
    out = tmp_path / "dpo.json"
    assert bench.main(["--tiny", "--method", "dpo", "--lengths", "64,96", "--steps", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sequences 2 x 64 (as asked" in printed and "sequences 2 x 96 (as asked" in printed
    assert "SUMMARY tiny DPO QLoRA" in printed

    data = json.loads(out.read_text())
    assert data["method"] == "dpo" and data["config"] == "tiny" and data["beta"] == 0.1
    assert [r["length"] for r in data["results"]] == [64, 96]
    assert data["longest_fit"] == 96 and data["oom_at"] is None
    for result in data["results"]:
        assert result["sequences_per_step"] == 2  # prompt+chosen and prompt+rejected
        assert result["sequence_length"] == result["length"]
        assert result["steps"] == 1 and result["step_s"] > 0
        assert math.isfinite(result["loss"]) and result["loss"] > 0
        assert result["reply_tokens"] == [result["length"] // bench.REPLY_SHARE] * 2
    # the second length trained a fresh adapter of the same size, not one stacked on the first
    first, second = data["results"]
    assert first["trainable_params"] == second["trainable_params"] > 0
