"""From a preset and the command line to TRL's own config objects.

`plan_training` decides, before anything heavy loads, what this run will
really do on this machine (4-bit or not, which optimizer, which attention)
and refuses what cannot work: 4-bit QLoRA without CUDA is refused unless the
user allows plain LoRA. The builders below turn the plan into the objects TRL
and PEFT document: one `SFTConfig`, one `LoraConfig`, one
`BitsAndBytesConfig` for a single `SFTTrainer`. No training loop lives here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.errors import CoachError

from .data import LOSS_CHOICES, OVER_LENGTH_CHOICES, Loss, OverLength
from .distributed import device_map, fsdp_enabled, ranks_from_environment
from .models import bitsandbytes_installed, cuda_available, flash_attention_available
from .presets import TrainPreset, get_preset

_CUDA_ONLY_OPTIMIZERS = {"paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit", "adamw_torch_fused"}
REPORT_TO_CHOICES: tuple[str, ...] = ("none", "tensorboard")
METHOD_CHOICES: tuple[str, ...] = ("sft", "dpo", "grpo")
"""sft: TRL's SFTTrainer on `messages` examples; dpo: DPOTrainer on preference pairs (`coach slice --pairs`);
grpo: GRPOTrainer on prompts, rewarded by the judge on the rubric (`rubric_reward`)."""
DEFAULT_DPO_BETA = 0.1
DEFAULT_GENERATIONS = 4
DEFAULT_COMPLETION_TOKENS = 256


def tensorboard_installed() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


@dataclass(frozen=True)
class TrainRequest:
    """What `coach train` was asked to do; every field but `data` has a default from the preset."""

    data: Path
    preset: str = "tiny"
    model: str | None = None
    max_length: int | None = None
    over_length: OverLength | None = None
    allow_no_4bit: bool = False
    allow_download: bool = False
    resume: bool = False
    steps: int | None = None
    save_steps: int | None = None
    out: Path | None = None
    presets_file: Path | None = None
    loss: Loss = "all-assistant"  # every assistant reply supervised, or only the final one ("last-reply")
    val_fraction: float | None = None  # conversations held out for the eval loss; None: 0.1 from 10 of them
    eval_steps: int | None = None  # default: every save_steps
    report_to: str = "none"  # or "tensorboard" (offline event files in RUN_DIR/checkpoints/runs)
    method: str = "sft"  # METHOD_CHOICES
    from_adapter: Path | None = None  # dpo/grpo: continue this LoRA adapter (an SFT run's) instead of a new one
    beta: float | None = None  # dpo: the preference strength against the reference (0.1); grpo: KL weight (0)
    generations: int | None = None  # grpo: completions sampled per prompt
    completion_tokens: int | None = None  # grpo: longest sampled completion
    run_config: Path | None = None  # grpo: the run config whose judge role scores completions
    reward_criteria: tuple[str, ...] = ()  # grpo: judge only these (of the single-reply criteria); () all of them
    domain: Path | None = None  # grpo: the domain pack whose rubric and judge prompt make the reward (None: bundled)


@dataclass(frozen=True)
class TrainPlan:
    request: TrainRequest
    preset: TrainPreset
    model_ref: str
    max_length: int
    max_steps: int
    save_steps: int
    cuda: bool
    use_4bit: bool
    dtype: str
    optim: str
    attn_implementation: str
    notes: tuple[str, ...] = ()
    eval_steps: int = 0

    @property
    def seed(self) -> int:
        return self.preset.training.seed

    @property
    def beta(self) -> float | None:
        """DPO's beta (default 0.1), GRPO's KL coefficient (default 0: no reference model), None for SFT."""
        if self.request.method == "sft":
            return None
        if self.request.beta is not None:
            return self.request.beta
        return DEFAULT_DPO_BETA if self.request.method == "dpo" else 0.0

    def summary(self) -> dict[str, Any]:
        """What the run record keeps about the recipe."""
        return {
            "preset": self.preset.name,
            "model": self.model_ref,
            "max_length": self.max_length,
            "max_steps": self.max_steps,
            "save_steps": self.save_steps,
            "device": "cuda" if self.cuda else "cpu",
            "quantization": "4-bit nf4 (QLoRA)" if self.use_4bit else None,
            "dtype": self.dtype,
            "optim": self.optim,
            "attn_implementation": self.attn_implementation,
            "loss": self.request.loss,
            "val_fraction": self.request.val_fraction,
            "eval_steps": self.eval_steps,
            "report_to": self.request.report_to,
            "method": self.request.method,
            "from_adapter": str(self.request.from_adapter) if self.request.from_adapter else None,
            "beta": self.beta,
            "lora": self.preset.lora.model_dump(),
            "training": self.preset.training.model_dump(),
            "notes": list(self.notes),
        }


def plan_training(request: TrainRequest, *, cuda: bool | None = None, preset: TrainPreset | None = None) -> TrainPlan:
    """Resolve the preset against the request and this machine; raise CoachError for what cannot run."""
    preset = preset or get_preset(request.preset, request.presets_file)
    cuda = cuda_available() if cuda is None else cuda
    notes: list[str] = []

    if request.method not in METHOD_CHOICES:
        raise CoachError(f"--method must be one of {', '.join(METHOD_CHOICES)}, got {request.method!r}")
    if request.from_adapter is not None and request.method == "sft":
        raise CoachError("--from-adapter continues an SFT adapter with --method dpo or grpo; SFT starts a new one")
    if request.method != "sft" and request.loss != "all-assistant":
        raise CoachError(f"--loss applies to --method sft; {request.method} has its own objective")
    if request.beta is not None and (request.method == "sft" or request.beta < 0):
        raise CoachError("--beta is for --method dpo (above 0) or grpo (0 or more)")
    if request.method == "dpo" and request.beta is not None and request.beta <= 0:
        raise CoachError("--beta must be above 0 for DPO (0.1 is usual)")
    if request.method != "grpo" and (request.generations or request.completion_tokens or request.reward_criteria):
        raise CoachError("--generations, --completion-tokens and --reward-criteria are for --method grpo")
    if request.generations is not None and request.generations < 2:
        raise CoachError("--generations must be at least 2 (GRPO compares completions of one prompt)")
    if request.over_length is not None and request.over_length not in OVER_LENGTH_CHOICES:
        raise CoachError(f"--over-length must be one of {', '.join(OVER_LENGTH_CHOICES)}")
    max_length = request.max_length or preset.max_length
    if max_length < 16:
        raise CoachError(f"--max-length {max_length} is too short for a conversation (at least 16 tokens)")
    max_steps = request.steps if request.steps is not None else preset.training.max_steps
    if max_steps == 0 or max_steps < -1:
        raise CoachError("--steps must be a positive number of optimizer steps")
    save_steps = request.save_steps or preset.training.save_steps
    if request.loss not in LOSS_CHOICES:
        raise CoachError(f"--loss must be one of {', '.join(LOSS_CHOICES)}, got {request.loss!r}")
    if request.val_fraction is not None and not 0 <= request.val_fraction < 1:
        raise CoachError(
            f"--val-fraction must be at least 0 and below 1 (a fraction of conversations), got {request.val_fraction}"
        )
    if request.eval_steps is not None and request.eval_steps < 1:
        raise CoachError("--eval-steps must be a positive number of optimizer steps")
    eval_steps = request.eval_steps or save_steps
    if request.report_to not in REPORT_TO_CHOICES:
        raise CoachError(f"--report-to must be one of {', '.join(REPORT_TO_CHOICES)}, got {request.report_to!r}")
    if request.report_to == "tensorboard" and not tensorboard_installed():
        raise CoachError(
            "--report-to tensorboard needs the tensorboard package, which is not installed: pip install tensorboard "
            "(or leave --report-to at none; the losses are in the store and on the Train screen either way)"
        )

    use_4bit = preset.quantized
    dtype = preset.dtype
    if use_4bit and not cuda:
        if not request.allow_no_4bit:
            raise CoachError(
                f"preset {preset.name!r} loads the base model in 4-bit (QLoRA), and 4-bit needs a CUDA GPU: this "
                "machine has none. Pass --allow-no-4bit to train plain LoRA on the unquantized base instead "
                f"({dtype} weights in memory: for a 12B model about 24 GB, and very slow on a CPU)"
            )
        use_4bit = False
        notes.append(
            f"no CUDA GPU: 4-bit is impossible here; training plain LoRA on the {dtype} base (--allow-no-4bit)"
        )
    elif use_4bit and not bitsandbytes_installed():
        if not request.allow_no_4bit:
            raise CoachError(
                "4-bit loading needs the bitsandbytes package: pip install -e '.[train]' "
                "(or pass --allow-no-4bit to train plain LoRA instead)"
            )
        use_4bit = False
        notes.append("bitsandbytes is missing: training plain LoRA on the unquantized base (--allow-no-4bit)")
    if not cuda and dtype == "float16":
        dtype = "float32"
        notes.append("no CUDA GPU: float16 training needs one; using float32")

    optim = preset.training.optim
    if optim in _CUDA_ONLY_OPTIMIZERS and not (cuda and (optim == "adamw_torch_fused" or bitsandbytes_installed())):
        notes.append(f"optimizer {optim} needs CUDA (and bitsandbytes); using adamw_torch")
        optim = "adamw_torch"

    attn = preset.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and flash_attention_available() else "sdpa"
    elif attn == "flash_attention_2" and not (cuda and flash_attention_available()):
        notes.append("flash_attention_2 needs CUDA and the flash-attn package; using sdpa")
        attn = "sdpa"

    return TrainPlan(
        request=request,
        preset=preset,
        model_ref=request.model or preset.model,
        max_length=max_length,
        max_steps=max_steps,
        save_steps=save_steps,
        cuda=cuda,
        use_4bit=use_4bit,
        dtype=dtype,
        optim=optim,
        attn_implementation=attn,
        notes=tuple(notes),
        eval_steps=eval_steps,
    )


# --- TRL / PEFT / bitsandbytes objects -------------------------------------------------------------


def quantization_config(plan: TrainPlan):
    """`BitsAndBytesConfig` for QLoRA, or None for plain LoRA."""
    if not plan.use_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    q = plan.preset.quantization
    compute = getattr(torch, q.compute_dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=compute,
        # FSDP shards parameters of one dtype: the 4-bit weights are stored in the compute dtype
        bnb_4bit_quant_storage=compute if fsdp_enabled() else torch.uint8,
    )


def lora_config(plan: TrainPlan):
    from peft import LoraConfig

    lora = plan.preset.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        exclude_modules=lora.exclude_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def model_init_kwargs(plan: TrainPlan) -> dict[str, Any]:
    """`from_pretrained` arguments; SFTTrainer loads the model itself from these (SFTConfig.model_init_kwargs)."""
    kwargs: dict[str, Any] = {"dtype": plan.dtype, "attn_implementation": plan.attn_implementation}
    if plan.cuda and not fsdp_enabled():  # under FSDP the wrapper places the shards itself
        # the whole model on this rank's GPU; `auto` would spread a 4-bit model over CPU too
        kwargs["device_map"] = device_map(ranks_from_environment())
    return kwargs


def trainer_arguments(plan: TrainPlan, output_dir: Path, *, evaluate: bool = False) -> dict[str, Any]:
    """The `TrainingArguments` every method shares: the preset's recipe, this machine's choices, the run's paths.

    `evaluate`: the run has a validation split, whose loss is computed every `plan.eval_steps`.
    """
    t = plan.preset.training
    bf16 = plan.dtype == "bfloat16" or (plan.use_4bit and plan.preset.quantization.compute_dtype == "bfloat16")
    return dict(
        output_dir=str(output_dir),
        # model loading (the trainer calls from_pretrained with these, plus the quantization config)
        model_init_kwargs=model_init_kwargs(plan),
        # optimization
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # transformers 5: a value below 1 is a ratio of the total steps
        num_train_epochs=t.num_train_epochs,
        max_steps=plan.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        optim=plan.optim,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=bf16,
        fp16=False,
        # memory for long sequences; TRL's fused LM head already computes the loss in chunks
        # without materializing the (sequence x 262k vocabulary) logits
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        # bookkeeping: checkpoints on an interval, progress through our callback instead of tqdm
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=plan.save_steps,
        save_total_limit=t.save_total_limit,
        # validation loss only (no logits kept), on the held-out conversations
        eval_strategy="steps" if evaluate else "no",
        eval_steps=plan.eval_steps if evaluate else None,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        prediction_loss_only=True,
        seed=t.seed,
        data_seed=t.seed,
        report_to=plan.request.report_to,
        disable_tqdm=True,
        use_cpu=not plan.cuda,
        dataloader_num_workers=0,
        # LoRA trains every adapter it adds: DDP need not search the graph for unused ones each step
        ddp_find_unused_parameters=False,
    )


def sft_config(plan: TrainPlan, output_dir: Path, *, evaluate: bool = False):
    """The one `SFTConfig` of a run: the shared arguments, and data already tokenized and masked (data.py).

    Every example fits max_length, so TRL cuts nothing.
    """
    from trl import SFTConfig

    return SFTConfig(
        **trainer_arguments(plan, output_dir, evaluate=evaluate),
        max_length=plan.max_length,
        packing=False,
        eos_token=plan.preset.eos_token,
    )
