"""Training presets as data: `config/train-presets.yaml`, validated before anything loads.

A preset names the base model and the whole recipe (quantization, LoRA,
optimizer, schedule, lengths). Validation is strict: unknown keys are
refused (a typo such as `lora.rank` must not silently train with the
default), and each problem is reported as `FILE: PRESET.FIELD: message`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coach_data import bundled_dir
from state.errors import CoachError

PRESETS_FILE = bundled_dir("config") / "train-presets.yaml"

DType = Literal["float32", "bfloat16", "float16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantizationSettings(_Strict):
    """bitsandbytes 4-bit loading (QLoRA). Needs CUDA."""

    bits: Literal[4] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: DType = "bfloat16"


class LoraSettings(_Strict):
    r: int = Field(gt=0, le=1024)
    alpha: float = Field(gt=0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    exclude_modules: str | list[str] | None = None

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("names no module; use 'all-linear' for every linear projection")
        return value

    @field_validator("exclude_modules")
    @classmethod
    def _regex(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a regular expression: {err}") from None
        return value


class TrainingSettings(_Strict):
    """The `SFTConfig` fields a preset sets; everything else keeps TRL's default."""

    learning_rate: float = Field(gt=0, lt=1)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = "cosine"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    num_train_epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="-1: run num_train_epochs")
    per_device_train_batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    optim: Literal[
        "adamw_torch", "adamw_torch_fused", "adafactor", "paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit"
    ] = "adamw_torch"
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    gradient_checkpointing: bool = True
    packing: bool = False
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int | None = Field(default=3, ge=1)
    seed: int = 42

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be a positive number of steps, or -1 to train num_train_epochs")
        return value


class TrainPreset(_Strict):
    name: str = ""
    description: str = ""
    model: str = Field(min_length=1)
    dtype: DType = "bfloat16"
    quantization: QuantizationSettings | None = None
    lora: LoraSettings
    max_length: int = Field(ge=128, le=1_048_576)
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flex_attention"] = "auto"
    chat_template: Literal["gemma3", "model"] = Field(
        default="model",
        description="gemma3: Gemma 3's template (for checkpoints that carry none); model: the tokenizer's own",
    )
    eos_token: str | None = None
    training: TrainingSettings

    @model_validator(mode="after")
    def _packing(self) -> TrainPreset:
        if self.training.packing:
            # Packing concatenates conversations into one row; the per-turn masks and the
            # never-truncate-silently rule are defined per example, so it stays off.
            raise ValueError("training.packing: must be false (examples are trained one conversation per row)")
        return self

    @property
    def quantized(self) -> bool:
        return self.quantization is not None


class PresetError(CoachError):
    """A presets file that does not validate; the message lists every problem."""


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def parse_presets(raw: Any, source: str) -> dict[str, TrainPreset]:
    """Validate the YAML document of a presets file; raise PresetError naming every bad field."""
    if not isinstance(raw, dict) or not raw:
        raise PresetError(f"{source}: expected a mapping of preset names to presets")
    presets: dict[str, TrainPreset] = {}
    problems: list[str] = []
    for name, body in raw.items():
        if not isinstance(body, dict):
            problems.append(f"{source}: {name}: expected a mapping of settings, got {type(body).__name__}")
            continue
        try:
            presets[str(name)] = TrainPreset.model_validate({**body, "name": str(name)})
        except ValidationError as err:
            for e in err.errors():
                field = _where(e["loc"])
                message = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    message = "unknown setting (check the spelling)"
                problems.append(f"{source}: {name}.{field}: {message}" if field else f"{source}: {name}: {message}")
    if problems:
        raise PresetError(
            f"{len(problems)} problem(s) in the training presets:\n" + "\n".join(f"  {p}" for p in problems)
        )
    return presets


def load_presets(path: Path | str | None = None) -> dict[str, TrainPreset]:
    from actors.pack.yaml_io import YamlProblem, load_yaml

    file = Path(path) if path else PRESETS_FILE
    if not file.is_file():
        raise PresetError(f"training presets file not found: {file}")
    try:
        raw = load_yaml(file)
    except YamlProblem as err:
        raise PresetError(f"{file}: {err}") from None
    return parse_presets(raw, str(file))


def get_preset(name: str, path: Path | str | None = None) -> TrainPreset:
    presets = load_presets(path)
    if name not in presets:
        raise PresetError(f"unknown training preset {name!r}; presets: {', '.join(sorted(presets))}")
    return presets[name]
