"""Known context windows, for backends whose config does not say.

A config's ``context_window`` always wins. Without one, a model name prefix
listed here gives the window; otherwise the kind's conservative default
(an unknown OpenAI-compatible server is most often a local model with a
small window). The embedded backend needs none of this: it reads the window
from the GGUF and uses ``n_ctx``.
"""

from __future__ import annotations

KNOWN_PREFIXES: tuple[tuple[str, int], ...] = (
    ("claude-", 200_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-5", 400_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
)
KIND_DEFAULTS = {"openai": 8_192, "anthropic": 200_000, "claude_cli": 200_000}


def default_window(kind: str, model: str | None) -> int:
    name = (model or "").lower().rsplit("/", 1)[-1]
    for prefix, window in KNOWN_PREFIXES:
        if name.startswith(prefix):
            return window
    return KIND_DEFAULTS.get(kind, 8_192)
