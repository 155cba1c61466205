"""How long an example can the gemma-3-12b preset train on one 80 GB GPU? QLoRA steps at 8K…64K tokens (SFT), or DPO.

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

`--method dpo` measures `coach train --method dpo` on the same model instead: TRL's DPOTrainer with the
config that command builds (`dpo_config`: the preset's recipe, beta 0.1, max_length = the pair length),
the same LoRA given as `peft_config` (so, as in the product, the reference is the base with the adapter
switched off: no second model), and the same benchmark overrides as SFT (no saving, no accumulation, no
warmup). Each step is one pair, i.e. two sequences (prompt+chosen, prompt+rejected) of exactly LENGTH
tokens each (the reply is the last eighth of each), plus the reference's no-grad pass over both. The pairs
are text in TRL's conversational format, tokenized by DPOTrainer itself with a word-level tokenizer whose
words "t<i>" are token i, so the counts are exact (the printout shows the sequence shape the model was
really given, and the exit status is 1 if it differs). The figure issue 18 asks for, DPO at 16K tokens per
pair (default lengths 8192,16384; not yet run on a GPU: expected to take a few minutes on an H200, the
model build as for SFT and then two steps):

    python benchmarks/bench_train_gpu.py --method dpo --lengths 16384 --json benchmarks/results/dpo_gpu_h200.json

Without CUDA it prints why and exits 0 (so `make bench` passes on a CPU). `--tiny` runs the same code
on a toy Gemma 3 config, on the CPU if there is no GPU: a dry run of every step but the sizes (4-bit
included: bitsandbytes quantizes on the CPU too), e.g. `--tiny --method dpo --lengths 256,512`.

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
DEFAULT_DPO_LENGTHS = (8192, 16384)
METHODS = ("sft", "dpo")
REPLY_SHARE = 8  # DPO: each reply (chosen, rejected) is the last 1/REPLY_SHARE of its side, the prompt the rest
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


# DPO data: text that DPOTrainer tokenizes itself, with counts known exactly.
# The pair tokenizer's special words; every other id i is the word "t<i>".
PAIR_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "user", "model")
# Gemma's turn layout, one word per token (the pre-tokenizer splits on whitespace only): a pair side renders as
# <bos> <start_of_turn> user P… <end_of_turn> <start_of_turn> model R… <end_of_turn>, i.e. P + R + 7 tokens, and
# the prompt with its generation prompt is exactly that side's first P + 6 tokens (TRL checks the prefix).
PAIR_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %} <start_of_turn> {{ 'model' if m['role'] == 'assistant' else m['role'] }}"
    " {{ m['content'] }} <end_of_turn>{% endfor %}{% if add_generation_prompt %} <start_of_turn> model{% endif %}"
)
PAIR_OVERHEAD = 7  # template tokens on a side: <bos>, 3 around the user turn, 3 around the reply


def pair_tokenizer(vocab_size: int):
    """A word-level tokenizer over the model's whole vocabulary: "t<i>" is token i, so text has exact token counts."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(PAIR_SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(PAIR_SPECIALS), vocab_size)})
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    tokenizer.chat_template = PAIR_TEMPLATE
    return tokenizer


def pair_side_tokens(tokenizer, prompt: list[dict], reply: str) -> int:
    """Tokens of prompt+reply as DPOTrainer renders a conversational pair side (the chat template, tokenized)."""
    messages = [*prompt, {"role": "assistant", "content": reply}]
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def make_pairs(tokenizer, length: int, rows: int, vocab: int, seed: int) -> list[dict]:
    """`rows` conversational preference pairs whose prompt+chosen and prompt+rejected are each exactly `length` tokens.

    One user turn as the prompt, then two different random replies of the same length (the last
    1/REPLY_SHARE of each side), so neither side is padded. Every side is counted with the tokenizer's
    own chat template; a count off by one token raises instead of measuring the wrong length.
    """
    import numpy as np

    reply_words = max(1, length // REPLY_SHARE - 1)  # + its <end_of_turn>
    prompt_words = length - PAIR_OVERHEAD - reply_words
    if prompt_words < 1:
        raise ValueError(f"--lengths {length}: a pair needs at least {PAIR_OVERHEAD + 2} tokens")
    rng = np.random.default_rng(seed)
    low = len(PAIR_SPECIALS)

    def words(n: int) -> str:
        return " ".join(f"t{i}" for i in rng.integers(low, vocab, size=n))

    pairs = []
    for _ in range(rows):
        pair = {
            "prompt": [{"role": "user", "content": words(prompt_words)}],
            "chosen": [{"role": "assistant", "content": words(reply_words)}],
            "rejected": [{"role": "assistant", "content": words(reply_words)}],
        }
        for side in ("chosen", "rejected"):
            got = pair_side_tokens(tokenizer, pair["prompt"], pair[side][0]["content"])
            if got != length:
                raise AssertionError(f"synthetic pair: prompt+{side} is {got} tokens, expected {length}")
        pairs.append(pair)
    return pairs


class ShapeRecorder:
    """Wraps the trainer's collator to record the shape of every batch the model is really given."""

    def __init__(self, collator) -> None:
        self.collator = collator
        self.shapes: list[tuple[int, ...]] = []
        self.completion_tokens: list[list[int]] = []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.shapes.append(tuple(batch["input_ids"].shape))
        if "completion_mask" in batch:
            self.completion_tokens.append(batch["completion_mask"].sum(dim=1).tolist())
        return batch


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


def benchmark_arguments(args, plan, steps: int):
    """A benchmark's trainer arguments (no checkpoints, no accumulation, constant learning rate from the first
    step), a step timer, and whether peak GPU memory is measured (reset here, so it is this length's alone)."""
    import torch

    args.save_strategy = "no"
    args.gradient_accumulation_steps = 1
    args.warmup_steps = 0
    args.logging_steps = steps
    cuda = torch.cuda.is_available() and plan.cuda
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return timing_callback_class()(), cuda


def run_length(model, tokenizer, plan, length: int, steps: int, workdir: Path, vocab: int) -> dict:
    import torch
    from trl import SFTTrainer

    from actors.training.recipe import sft_config

    length_plan = replace(plan, max_length=length, max_steps=steps)
    args = sft_config(length_plan, workdir / f"len-{length}")
    args.model_init_kwargs = None  # the model is built here, not loaded by the trainer
    timer, cuda = benchmark_arguments(args, plan, steps)
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


def run_length_dpo(model, tokenizer, plan, length: int, steps: int, workdir: Path, vocab: int) -> tuple[dict, object]:
    """DPO steps on pairs of `length` tokens per side; returns the result and the base model, its adapter removed.

    The model is the 4-bit base without an adapter, and the LoRA goes in as `peft_config`, as `coach train
    --method dpo` does (dpo.make_trainer): TRL then wraps it and computes the reference with the adapter off.
    """
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOTrainer

    from actors.training.dpo import dpo_config
    from actors.training.recipe import lora_config

    length_plan = replace(plan, max_length=length, max_steps=steps)
    args = dpo_config(length_plan, workdir / f"dpo-len-{length}", model_given=True)
    timer, cuda = benchmark_arguments(args, plan, steps)
    pairs = Dataset.from_list(make_pairs(tokenizer, length, steps, vocab, seed=length))
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        processing_class=tokenizer,
        peft_config=lora_config(plan),
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)
    recorder = ShapeRecorder(trainer.data_collator)
    trainer.data_collator = recorder
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    try:
        trainer.train()
        logs = trainer.state.log_history
        loss = next((h["loss"] for h in reversed(logs) if "loss" in h), float("nan"))
        accuracy = next((h.get("rewards/accuracies") for h in reversed(logs) if "rewards/accuracies" in h), None)
    finally:
        peft_model = trainer.model
        trainer.accelerator.free_memory()
        del trainer
        # back to the bare base for the next length: PEFT removes the LoRA layers (4-bit weights untouched),
        # and the instance-level forward TRL patched in (its fused LM head) goes, so the class's forward is back
        model = peft_model.unload()
        model.__dict__.pop("forward", None)
        del peft_model
        gc.collect()
    left = [name for name, _ in model.named_modules() if "lora_" in name]
    if left:  # the next length would train on top of this one's adapter
        raise RuntimeError(f"the LoRA layers were not removed after length {length}: {left[:3]}")
    step = timer.times[-1] if timer.times else float("nan")
    shape = recorder.shapes[-1] if recorder.shapes else None
    out = {
        "length": length,
        "steps": len(timer.times),
        "step_s": round(step, 3),
        "first_step_s": round(timer.times[0], 3) if timer.times else None,
        "sequences_per_step": shape[0] if shape else None,
        "sequence_length": shape[1] if shape else None,  # measured: the batch the model was given
        "reply_tokens": recorder.completion_tokens[-1] if recorder.completion_tokens else None,
        "tokens_per_step": shape[0] * shape[1] if shape else None,
        "tokens_per_s": round(shape[0] * shape[1] / step, 1) if shape and step == step and step > 0 else None,
        "loss": round(float(loss), 4),
        "reward_accuracy": accuracy,
        "trainable_params": trainable,
        "beta": args.beta,
    }
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
    return out, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="sft",
        help="sft: SFTTrainer on single examples (default); dpo: DPOTrainer on preference pairs",
    )
    parser.add_argument(
        "--lengths",
        default=None,
        help=(
            "comma-separated tokens per example (dpo: per side of a pair), run shortest first "
            f"(default sft {','.join(map(str, DEFAULT_LENGTHS))}; dpo {','.join(map(str, DEFAULT_DPO_LENGTHS))})"
        ),
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
    dpo = args.method == "dpo"
    if args.lengths is None:
        args.lengths = ",".join(map(str, DEFAULT_DPO_LENGTHS if dpo else DEFAULT_LENGTHS))
    try:
        lengths = sorted({int(x) for x in args.lengths.split(",") if x.strip()})
    except ValueError:
        parser.error(f"--lengths {args.lengths!r}: expected comma-separated whole numbers of tokens, e.g. 8192,16384")
    if not lengths or min(lengths) < 16:
        parser.error(f"--lengths {args.lengths!r}: give at least one length of 16 tokens or more")
    if args.steps < 1:
        parser.error("--steps must be at least 1 (the last step is the timed one)")

    try:
        import torch
    except ImportError:
        say("bench_train_gpu: torch is not installed; nothing measured")
        return 0
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        say(
            f"bench_train_gpu: no CUDA GPU here. This benchmark measures 4-bit QLoRA {args.method.upper()} "
            "training of Gemma 3 12B "
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

    plan = plan_training(TrainRequest(data=Path("unused.jsonl"), preset="gemma-3-12b", method=args.method), cuda=True)
    if not cuda:  # --tiny on a CPU: keep the 4-bit path, take the CPU's optimizer and device
        plan = replace(plan, cuda=False, optim="adamw_torch")
    if args.attn:
        plan = replace(plan, attn_implementation=args.attn)
    text_config = TINY_TEXT if args.tiny else GEMMA3_12B_TEXT
    device = "cuda" if cuda else "cpu"

    header = {
        "versions": versions,
        "method": args.method,
        "preset": plan.preset.name,
        "attn": plan.attn_implementation,
        "optim": plan.optim,
        "lora_r": plan.preset.lora.r,
        "config": "tiny" if args.tiny else "gemma-3-12b",
    }
    if dpo:
        header["beta"] = plan.beta
        header["reference"] = "the base with the adapter off (PEFT, no second model)"
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

    weights = f", {torch.cuda.memory_allocated() / GIB:.1f} GiB on the GPU after loading" if cuda else ""
    if dpo:  # DPOTrainer adds the LoRA itself (peft_config), as `coach train --method dpo` does
        adapter = f"LoRA r={plan.preset.lora.r} added by DPOTrainer per length"
    else:
        model = get_peft_model(model, lora_config(plan))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        adapter = f"LoRA r={plan.preset.lora.r}: {trainable / 1e6:.1f}M trainable"
    say(f"model: {params / 1e9:.2f}B parameters, 4-bit loaded in {load_s:.0f} s{weights}; {adapter}")

    vocab = text_config["vocab_size"]
    tokenizer = pair_tokenizer(vocab) if dpo else fake_tokenizer()
    results, fits, oom_at = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            try:
                if dpo:
                    result, model = run_length_dpo(model, tokenizer, plan, length, args.steps, Path(tmp), vocab)
                else:
                    result = run_length(model, tokenizer, plan, length, args.steps, Path(tmp), vocab)
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
            if dpo:
                measured = f"{result['sequences_per_step']} x {result['sequence_length']}"
                checked = "as asked" if result["sequence_length"] == length else f"NOT {length}: check the data"
                say(
                    f"{length:>7} tokens per side: step {result['step_s']:8.2f} s (first {result['first_step_s']} s), "
                    f"{result['tokens_per_s'] or 0:9.1f} tok/s, {memory}, loss {result['loss']}, "
                    f"sequences {measured} ({checked}; reply tokens {result['reply_tokens']}), "
                    f"{result['trainable_params'] / 1e6:.1f}M trainable"
                )
            else:
                say(
                    f"{length:>7} tokens: step {result['step_s']:8.2f} s, {result['tokens_per_s'] or 0:9.1f} tok/s, "
                    f"{memory}, loss {result['loss']}"
                )

    limit = f"{cap:g} GiB cap" if cap else "this card"
    longest = max(fits) if fits else None
    what = (
        f"DPO QLoRA (nf4, r={plan.preset.lora.r}, beta {plan.beta}, reference = adapter off, gradient checkpointing, "
        f"{plan.attn_implementation}, 1 pair = 2 sequences per step): longest tokens per side that fit in {limit}"
        if dpo
        else f"QLoRA (nf4, r={plan.preset.lora.r}, gradient checkpointing, {plan.attn_implementation}, batch 1): "
        f"longest length that fits in {limit}"
    )
    timings = ""
    if dpo and results:
        timings = "; " + ", ".join(
            f"{r['length']}: step {r['step_s']} s"
            + (f", peak {r['peak_allocated_gib']} GiB allocated / {r['peak_reserved_gib']} reserved" if cuda else "")
            for r in results
        )
    summary = (
        f"SUMMARY {header['config']} {what}: {longest if longest else 'none'}"
        + (f"; OOM at {oom_at}" if oom_at else f"; all of {','.join(map(str, lengths))} fit")
        + timings
    )
    say(summary)
    wrong = [r["length"] for r in results if dpo and r["sequence_length"] != r["length"]]
    if wrong:
        say(f"bench_train_gpu: the model was not given the lengths asked for at {wrong}: the figures are not valid")
    if args.json:
        args.json.write_text(
            json.dumps(
                {**header, "results": results, "longest_fit": longest, "oom_at": oom_at, "summary": summary}, indent=2
            )
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
