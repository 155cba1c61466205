"""Offline chat turns: the pack's system prompt, the history, a streamed reply.

Why this is more than "send the whole history each time": llama.cpp keeps
the previous prompt's KV cache and evaluates only what follows the longest
common prefix (see ``actors.backends.model_cache``). A conversation that is
re-sent word for word therefore costs only its newest message — *as long as
the prefix never changes*. Trimming the oldest turn on every request (what a
generic "fit the window" rule does) shifts the prefix each time and makes
every later turn re-read the whole history. So the engine keeps a *window
start* that moves only when the prompt would no longer fit, and then moves
far (to leave about half the window free), so the prefix stays stable for
many turns after each move.

The chat model gets its own pool of llama.cpp contexts (`chat_backend`), so
a run going on in the monitor, which uses the same GGUF, never evicts the
conversation's cached prefix nor makes a reply wait for a free context; two
slots let two conversations keep their caches when you switch between them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from actors.backends.base import Backend
from actors.backends.types import Message
from state.chat import ChatMessage

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
REPLY_MAX_TOKENS = 384
CHAT_N_BATCH = 256
"""Differs from the pipeline's default n_batch on purpose: the model cache keys its pools by
(file, n_ctx, n_threads, n_batch, chat format), so chat gets contexts (KV caches) of its own."""
CHAT_SLOTS = 2


def chat_backend(model: str = DEFAULT_CHAT_MODEL) -> Backend:
    """A llama.cpp backend for chat: a bundled model by name, or a GGUF path."""
    from actors.backends.factory import build_backend
    from actors.run_config import BUNDLED_NAMES, LlamaCppConfig

    if model not in BUNDLED_NAMES:
        model = str(Path(model).expanduser().resolve())
    return build_backend("chat", LlamaCppConfig(model=model, n_batch=CHAT_N_BATCH, slots=CHAT_SLOTS, timeout_s=None))


@dataclass
class TurnStats:
    """What one reply cost, shown under it: time to first token, total time, pieces."""

    first_token_s: float | None = None
    total_s: float = 0.0
    pieces: int = 0
    prompt_messages: int = 0
    window_start: int = 0

    def describe(self) -> str:
        if self.first_token_s is None:
            return "no reply"
        rate = self.pieces / self.total_s if self.total_s > 0 else 0.0
        return f"first token {self.first_token_s:.2f}s · {self.pieces} tokens · {rate:.0f} tok/s"


class ChatEngine:
    """Builds prompts with a stable prefix and streams replies (see the module docstring)."""

    def __init__(
        self, backend: Backend, system_prompt: str, *, max_tokens: int = REPLY_MAX_TOKENS, temperature: float = 0.7
    ) -> None:
        self.backend = backend
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.window_start = 0
        self.last = TurnStats()

    async def warm(self) -> None:
        """Load the model and read the system prompt now, while the person is still typing.

        The first reply of a conversation would otherwise pay for both; after
        this its prompt shares the cached system-prompt prefix.
        """
        messages = [Message(role="system", content=self.system_prompt), Message(role="user", content="Hello")]
        async for _ in self.backend.stream(messages, max_tokens=1, temperature=0.0):
            pass

    def reset(self) -> None:
        """A different conversation: start the window from its beginning."""
        self.window_start = 0

    def messages(self, history: Sequence[ChatMessage], start: int | None = None) -> list[Message]:
        start = self.window_start if start is None else start
        return [Message(role="system", content=self.system_prompt)] + [
            Message(role=m.role, content=m.content) for m in history[start:] if m.role in ("user", "assistant")
        ]

    @staticmethod
    def steer(messages: list[Message], steering: str) -> list[Message]:
        """This turn's prompt with the safety net's instruction added to the newest user message.

        Added to the prompt only, never to the stored history, and at the end
        of the prompt, so the cached prefix (everything before this message)
        is untouched and the next turn is not steered again unless its own
        message asks for it. Placed with the user's words rather than in the
        system prompt because some chat templates (Gemma's) have no
        mid-conversation system turn.
        """
        if not steering or not messages or messages[-1].role != "user":
            return messages
        last = messages[-1]
        note = f"{last.content}\n\n[Instruction for the assistant, not written by the user: {steering.strip()}]"
        return [*messages[:-1], Message(role="user", content=note)]

    async def _window(self) -> int:
        if self.backend.kind == "llama_cpp":
            return await anyio.to_thread.run_sync(lambda: self.backend.context_window)
        return self.backend.context_window

    async def _count(self, messages: list[Message]) -> int:
        if self.backend.kind == "llama_cpp":
            return await anyio.to_thread.run_sync(self.backend.count_tokens, messages)
        return self.backend.count_tokens(messages)

    async def fit(self, history: Sequence[ChatMessage], *, reserve: int = 0) -> list[Message]:
        """The prompt for the next reply; moves the window start only when it must, and then far.

        ``reserve`` keeps room for what `steer` will add to this turn.
        """
        budget = await self._window() - self.max_tokens - 16 - reserve
        if self.window_start >= len(history):
            self.window_start = 0
        messages = self.messages(history)
        if await self._count(messages) <= budget:
            return messages
        # Drop whole exchanges from the front until the prompt uses about half the budget,
        # always keeping the newest user message.
        start = self.window_start
        last_user = max(i for i, m in enumerate(history) if m.role == "user")
        while start < last_user:
            start += 1
            while start < last_user and history[start].role != "user":
                start += 1
            messages = self.messages(history, start)
            if await self._count(messages) <= budget // 2:
                break
        self.window_start = start
        return messages

    async def reply(self, history: Sequence[ChatMessage], *, steering: str = "") -> AsyncIterator[str]:
        """The assistant's answer to the history's last user message, piece by piece.

        ``steering`` is the safety net's instruction for this turn (empty when
        the message carries no crisis signal); see `steer`.
        """
        started = time.perf_counter()
        reserve = len(steering) // 2 if steering else 0  # generous: at least one token per two characters
        messages = self.steer(await self.fit(history, reserve=reserve), steering)
        stats = TurnStats(prompt_messages=len(messages), window_start=self.window_start)
        self.last = stats
        try:
            async for piece in self.backend.stream(messages, max_tokens=self.max_tokens, temperature=self.temperature):
                if stats.first_token_s is None:
                    stats.first_token_s = time.perf_counter() - started
                stats.pieces += 1
                yield piece
        finally:
            stats.total_s = time.perf_counter() - started
