"""LLM backends: one async interface over four transports, and the router actors use.

    from actors.backends import ModelRouter, Message

    async with ModelRouter.from_config(load_run_config(path)) as router:
        reply = await router.ask("judge", [Message(role="user", content="…")], schema=VERDICT)

Transports: ``llama_cpp`` (in-process, the offline default), ``openai`` (any
OpenAI-compatible server), ``anthropic`` (Messages API) and ``claude_cli``
(Claude Code in print mode). See design.md, "LLM backends and roles".
"""

from .base import Backend, estimate_tokens
from .bundled import BUNDLED, BundledModelMissing, bundled_path
from .context import ContextOverflow, Fitted, fit_messages
from .errors import BackendError
from .router import ModelRouter
from .types import Message, Reply, Usage

__all__ = [
    "BUNDLED",
    "Backend",
    "BackendError",
    "BundledModelMissing",
    "ContextOverflow",
    "Fitted",
    "Message",
    "ModelRouter",
    "Reply",
    "Usage",
    "bundled_path",
    "estimate_tokens",
    "fit_messages",
]


def __getattr__(name: str):
    """The concrete backends, imported on first use (llama_cpp loads a native library)."""
    lazy = {
        "LlamaCppBackend": ".llama_cpp_backend",
        "OpenAIBackend": ".openai_backend",
        "AnthropicBackend": ".anthropic_backend",
        "ClaudeCliBackend": ".claude_cli_backend",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name], __name__), name)
    raise AttributeError(name)
