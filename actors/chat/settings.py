"""A conversation's own settings, read from what a person typed: each mistake named by its field.

System prompt, temperature, reply length (max tokens) and context length
belong to one conversation (`Conversation.settings`), so a chat tuned for
short answers stays so when reopened, and another chat keeps the defaults.
A blank field means the default: the pack's system prompt, the engine's
temperature and reply length, and the model's own window.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import REPLY_MAX_TOKENS

DEFAULT_TEMPERATURE = 0.7
LIMITS = {"temperature": (0.0, 2.0), "max_tokens": (16, 8192), "context_length": (512, 131072)}


@dataclass(frozen=True)
class EngineSettings:
    """What the engine runs with for one conversation, every default filled in."""

    system_prompt: str
    temperature: float
    max_tokens: int
    context_length: int | None


def effective(settings: dict, pack_system_prompt: str) -> EngineSettings:
    return EngineSettings(
        system_prompt=settings.get("system_prompt") or pack_system_prompt,
        temperature=float(settings.get("temperature", DEFAULT_TEMPERATURE)),
        max_tokens=int(settings.get("max_tokens", REPLY_MAX_TOKENS)),
        context_length=int(settings["context_length"]) if settings.get("context_length") else None,
    )


def parse_settings(raw: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """(settings, problems by field) from the form's text; blank fields are left out (the default)."""
    settings: dict = {}
    problems: dict[str, str] = {}
    prompt = (raw.get("system_prompt") or "").strip()
    if prompt:
        settings["system_prompt"] = prompt
    for key, kind in (("temperature", float), ("max_tokens", int), ("context_length", int)):
        text = (raw.get(key) or "").strip()
        if not text:
            continue
        low, high = LIMITS[key]
        try:
            value = kind(text)
        except ValueError:
            problems[key] = (
                f"{key.replace('_', ' ')}: {text!r} is not a {'number' if kind is float else 'whole number'}"
            )
            continue
        if not low <= value <= high:  # nan compares false: refused too
            problems[key] = f"{key.replace('_', ' ')}: {text} is outside {low:g}–{high:g}"
            continue
        settings[key] = value
    return settings, problems
