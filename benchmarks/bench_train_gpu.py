"""How long an example can the gemma-3-12b preset train on one 80 GB GPU? QLoRA steps at 8K…64K tokens.

Builds Gemma 3 12B's language model from its configuration with random weights (no download: the
values of google/gemma-3-12b-it's text_config are written below), loads it in 4-bit NF4 with double
quantization through transformers' own bitsandbytes path (`from_pretrained(state_dict=…,
quantization_config=…)`, the bf16 random weights generated on the GPU), wraps it with the preset's
LoRA and trains with the preset's own `SFTConfig` (gradient checkpointing, TRL's chunked LM-head loss,
sdpa attention, paged 8-bit AdamW, batch 1) for a few steps per length. Printed per length: step time,
tokens/s and peak GPU memory; then the longest length that fits.

"Fits in 80 GB": on a card with more memory (an H200) the allocator is capped at --memory-cap-gib
(default 78 GiB: an H100 80GB's memory less the CUDA context), so an OOM happens where it would on an
80 GB card. Lengths run shortest first and stop at the first OOM.

Usage (on a CUDA machine; about 5–7 minutes for the default lengths on an H100/H200):

    python benchmarks/bench_train_gpu.py [--lengths 8192,16384,32768,65536] [--steps 2] [--json out.json]

Without CUDA it prints why and exits 0 (so `make bench` passes on a CPU). `--tiny` runs the same code
on a toy Gemma 3 config, on the CPU if there is no GPU: a dry run of every step but the sizes.

Packages: torch, transformers, peft, accelerate, trl, datasets, bitsandbytes (and pydantic, pyyaml for
the presets). A GPU machine without network takes the missing ones as wheels, e.g.

    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl bitsandbytes==0.50.2 trl==1.16.0 datasets==5.2.0 \\
        dill==0.4.1 multiprocess==0.70.19 peft==0.21.2 transformers==5.24.0 pydantic==2.14.3 \\
        pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
    # there:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site python ...
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # less fragmentation at long lengths

DEFAULT_LENGTHS = (8192, 16384, 32768, 65536)
GIB = 1024**3

# google/gemma-3-12b-it, text_config (with Gemma3TextConfig's defaults it relies on), as transformers 5 spells it.
GEMMA3_12B_TEXT = dict(
    vocab_size=262_208,
    hidden_size=3840,
    intermediate_size=15_360,
    num_hidden_layers=48,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    query_pre_attn_scalar=256,
    hidden_activation="gelu_pytorch_tanh",
    max_position_embeddings=131_072,
    rms_norm_eps=1e-6,
    sliding_window=1024,
    # five sliding-window (local) layers, then one global layer
    layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(48)],
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
    final_logit_softcapping=None,
    attn_logit_softcapping=None,
    tie_word_embeddings=True,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
)
TINY_TEXT = dict(
    GEMMA3_12B_TEXT,
    vocab_size=4096,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=6,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    query_pre_attn_scalar=32,
    sliding_window=64,
    layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(6)],
)


def say(text: str) -> None:
    print(text, flush=True)


def preflight() -> dict[str, str] | None:
    """Versions of what the run needs, or None after saying what is missing."""
    needed = ["torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "pydantic", "yaml"]
    versions, missing = {}, []
    for name in needed:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception as err:  # noqa: BLE001 - an ImportError or a broken install read the same here
            missing.append(f"{name} ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    if missing:
        say("cannot run: missing or broken packages: " + "; ".join(missing))
        if any(m.startswith("bitsandbytes") for m in missing):
            say("bitsandbytes is needed for 4-bit loading: bring its wheel (see this file's docstring)")
        return None
    return versions


def fake_tokenizer():
    """The data is made of token ids already; TRL only needs the pad and end-of-turn tokens' ids."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<end_of_turn>": 106}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


def build_model(text_config: dict, plan, device: str):
    """Gemma 3 12B (or the toy) from its config, random bf16 weights made on `device`, loaded in 4-bit."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from actors.training.recipe import quantization_config

    config = Gemma3TextConfig(**text_config)
    with torch.device("meta"):
        skeleton = Gemma3ForCausalLM(config)
    generator = torch.Generator(device=device).manual_seed(0)
    state = {}
    for name, tensor in skeleton.state_dict().items():
        if name == "lm_head.weight":  # tied to the embeddings
            continue
        if "norm" in name:  # Gemma's RMSNorm scales by (1 + weight)
            state[name] = torch.zeros(tensor.shape, dtype=torch.bfloat16, device=device)
        else:
            state[name] = torch.randn(tensor.shape, dtype=torch.bfloat16, device=device, generator=generator) * 0.02
    del skeleton
    params = sum(t.numel() for t in state.values())
    started = time.monotonic()
    model = Gemma3ForCausalLM.from_pretrained(
        None,
        config=config,
        state_dict=state,
        dtype=torch.bfloat16,
        quantization_config=quantization_config(plan),
        device_map={"": 0 if device == "cuda" else "cpu"},
        attn_implementation=plan.attn_implementation,
    )
    del state
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return model, params, time.monotonic() - started


def make_dataset(length: int, rows: int, vocab: int, seed: int):
    """Random token rows of exactly `length` tokens; the first eighth masked like a user turn."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    ids = rng.integers(4, min(vocab, 262_000), size=(rows, length), dtype=np.int32)
    labels = ids.copy()
    labels[:, : length // 8] = -100
    return Dataset.from_dict({"input_ids": list(ids), "labels": list(labels)})


def timing_callback_class():
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t)

    return StepTimer


def run_length(model, tokenizer, plan, length: int, steps: int, workdir: Path, vocab: int) -> dict:
    import torch
    from trl import SFTTrainer

    from actors.training.recipe import sft_config

    length_plan = replace(plan, max_length=length, max_steps=steps)
    args = sft_config(length_plan, workdir / f"len-{length}")
    # A benchmark: no checkpoints, no accumulation, constant learning rate from the first step.
    args.save_strategy = "no"
    args.gradient_accumulation_steps = 1
    args.warmup_steps = 0
    args.logging_steps = steps
    args.model_init_kwargs = None  # the model is built here, not loaded by the trainer
    timer = timing_callback_class()()
    cuda = torch.cuda.is_available() and plan.cuda
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=make_dataset(length, steps, vocab, seed=length),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.remove_callback(__import__("transformers").PrinterCallback)
    try:
        trainer.train()
        loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), float("nan"))
    finally:
        trainer.accelerator.free_memory()
        del trainer
        gc.collect()
    step = timer.times[-1] if timer.times else float("nan")
    out = {
        "length": length,
        "steps": len(timer.times),
        "step_s": round(step, 3),
        "first_step_s": round(timer.times[0], 3) if timer.times else None,
        "tokens_per_s": round(length / step, 1) if step == step and step > 0 else None,
        "loss": round(float(loss), 4),
    }
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lengths",
        default=",".join(map(str, DEFAULT_LENGTHS)),
        help="comma-separated tokens per example, run shortest first (default %(default)s)",
    )
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per length; the last one is timed")
    parser.add_argument(
        "--memory-cap-gib",
        type=float,
        default=78.0,
        help="cap the allocator here on bigger cards, to answer 'fits in 80 GB' (0: no cap)",
    )
    parser.add_argument("--attn", default=None, help="attention implementation (default: the preset's choice)")
    parser.add_argument("--tiny", action="store_true", help="a toy Gemma 3 config: a dry run of the whole path")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    lengths = sorted({int(x) for x in args.lengths.split(",") if x.strip()})

    try:
        import torch
    except ImportError:
        say("bench_train_gpu: torch is not installed; nothing measured")
        return 0
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        say(
            "bench_train_gpu: no CUDA GPU here. This benchmark measures 4-bit QLoRA training of Gemma 3 12B "
            "and needs one (an 80 GB H100/A100, or larger). Nothing measured. (--tiny dry-runs it on the CPU.)"
        )
        return 0
    versions = preflight()
    if versions is None:
        return 2
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

    from actors.training.recipe import TrainRequest, plan_training

    plan = plan_training(TrainRequest(data=Path("unused.jsonl"), preset="gemma-3-12b"), cuda=True)
    if not cuda:  # --tiny on a CPU: keep the 4-bit path, take the CPU's optimizer and device
        plan = replace(plan, cuda=False, optim="adamw_torch")
    if args.attn:
        plan = replace(plan, attn_implementation=args.attn)
    text_config = TINY_TEXT if args.tiny else GEMMA3_12B_TEXT
    device = "cuda" if cuda else "cpu"

    header = {
        "versions": versions,
        "preset": plan.preset.name,
        "attn": plan.attn_implementation,
        "optim": plan.optim,
        "lora_r": plan.preset.lora.r,
        "config": "tiny" if args.tiny else "gemma-3-12b",
    }
    cap = None
    if cuda:
        props = torch.cuda.get_device_properties(0)
        total = props.total_memory / GIB
        header["gpu"] = f"{props.name}, {total:.1f} GiB"
        if args.memory_cap_gib and total > args.memory_cap_gib:
            torch.cuda.set_per_process_memory_fraction(args.memory_cap_gib / total, 0)
            cap = args.memory_cap_gib
        header["memory_cap_gib"] = cap or round(total, 1)
    say("bench_train_gpu: " + json.dumps(header))

    model, params, load_s = build_model(text_config, plan, device)
    from peft import get_peft_model

    from actors.training.recipe import lora_config

    model = get_peft_model(model, lora_config(plan))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = f", {torch.cuda.memory_allocated() / GIB:.1f} GiB on the GPU after loading" if cuda else ""
    say(
        f"model: {params / 1e9:.2f}B parameters, 4-bit loaded in {load_s:.0f} s{weights}; "
        f"LoRA r={plan.preset.lora.r}: {trainable / 1e6:.1f}M trainable"
    )

    tokenizer = fake_tokenizer()
    results, fits, oom_at = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            try:
                result = run_length(model, tokenizer, plan, length, args.steps, Path(tmp), text_config["vocab_size"])
            except torch.OutOfMemoryError as err:
                oom_at = length
                say(f"{length:>7} tokens: OUT OF MEMORY ({str(err).splitlines()[0][:160]})")
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
                break
            results.append(result)
            fits.append(length)
            memory = (
                f"peak {result['peak_allocated_gib']:6.2f} GiB allocated, {result['peak_reserved_gib']:6.2f} reserved"
                if cuda
                else "memory n/a (CPU)"
            )
            say(
                f"{length:>7} tokens: step {result['step_s']:8.2f} s, {result['tokens_per_s'] or 0:9.1f} tok/s, "
                f"{memory}, loss {result['loss']}"
            )

    limit = f"{cap:g} GiB cap" if cap else "this card"
    longest = max(fits) if fits else None
    summary = (
        f"SUMMARY {header['config']} QLoRA (nf4, r={plan.preset.lora.r}, gradient checkpointing, "
        f"{plan.attn_implementation}, batch 1): longest length that fits in {limit}: "
        f"{longest if longest else 'none'}"
        + (f"; OOM at {oom_at}" if oom_at else f"; all of {','.join(map(str, lengths))} fit")
    )
    say(summary)
    if args.json:
        args.json.write_text(
            json.dumps(
                {**header, "results": results, "longest_fit": longest, "oom_at": oom_at, "summary": summary}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
