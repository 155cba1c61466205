"""From a backend's config entry to a live ``Backend``, by kind."""

from __future__ import annotations

from actors.run_config import (
    AnthropicConfig,
    BackendConfig,
    ClaudeCliConfig,
    LlamaCppConfig,
    OpenAIConfig,
    RunConfig,
)

from .base import Backend
from .bundled import is_bundled


def build_backend(name: str, config: BackendConfig, run_config: RunConfig | None = None) -> Backend:
    """Make the backend; nothing connects or loads until the first call or health check."""
    if isinstance(config, LlamaCppConfig):
        from .llama_cpp_backend import LlamaCppBackend

        path = None
        if not is_bundled(config.model):
            path = (run_config or RunConfig()).model_path(config.model)
        return LlamaCppBackend(name, config, model_path=path)
    if isinstance(config, OpenAIConfig):
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(name, config)
    if isinstance(config, AnthropicConfig):
        from .anthropic_backend import AnthropicBackend

        return AnthropicBackend(name, config)
    if isinstance(config, ClaudeCliConfig):
        from .claude_cli_backend import ClaudeCliBackend

        return ClaudeCliBackend(name, config)
    raise TypeError(f"unknown backend config {type(config).__name__}")
