"""The one interface every model sits behind.

A backend is one configured model endpoint. It makes exactly one attempt per
call: retries, context fitting and the role's bookkeeping belong to the
router, so the four transports stay small and the policy stays in one place.
Each backend owns its concurrency limit (``anyio.CapacityLimiter``), which the
router holds for the duration of a call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from .types import Message, Reply

# A rough characters-per-token figure for English text with modern BPE
# vocabularies; used only where the real tokenizer is not at hand.
CHARS_PER_TOKEN = 4
# Per-message overhead of chat formats (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A deliberately generous estimate (rounds up) for backends without a local tokenizer."""
    return sum(-(-len(m.content) // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 2


class Backend(ABC):
    """One configured model endpoint.

    ``name`` is the key in the run config; ``kind`` the transport
    (``llama_cpp``, ``openai``, ``anthropic``, ``claude_cli``); ``model`` what
    the transport is asked for; ``context_window`` the model's window in tokens.
    """

    kind: str = "abstract"
    tokenizes_locally: bool = False
    """``count_tokens`` runs the model's own tokenizer, which may take a while on a long prompt:
    call it off the event loop. Without one it is a cheap estimate, not worth a thread hop."""

    def __init__(self, name: str, *, model: str, context_window: int, max_concurrency: int) -> None:
        self.name = name
        self.model = model
        self._context_window = context_window
        self.max_concurrency = max_concurrency
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def context_window(self) -> int:
        """The model's window in tokens: prompt plus answer must fit in it."""
        return self._context_window

    @property
    def known_context_window(self) -> int | None:
        """The window if it is known without I/O (a local model reads it from its file the first time)."""
        return self._context_window or None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """How many calls may be in flight on this backend at once (shared by every role using it)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Reply:
        """One attempt at an answer; raises ``BackendError`` (``retryable`` set when worth retrying)."""

    @abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> AsyncIterator[str]:
        """The answer as text pieces, for chat. Not retried once pieces have been yielded."""

    @abstractmethod
    async def health(self) -> str:
        """A short description when reachable; raises ``BackendError`` when not."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release connections and processes; the backend is unusable afterwards."""

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens for these messages: exact where a local tokenizer exists, else an estimate."""
        return estimate_tokens(messages)

    def describe(self) -> str:
        return f"{self.name} ({self.kind}: {self.model})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} window={self.context_window}>"
