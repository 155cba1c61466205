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

A chat model is a bundled name, a GGUF path (prompted in the format
`chat_format.resolve_chat_format` decides), or ``server:NAME``, an
OpenAI-compatible backend of the run config (Ollama, vLLM, a llama.cpp
server), which applies its own template.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from actors.backends.base import Backend
from actors.backends.types import Message
from state.chat import ChatMessage
from state.errors import CoachError

from .chat_format import SERVER_PREFIX

if TYPE_CHECKING:
    from actors.run_config import RunConfig

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
REPLY_MAX_TOKENS = 384
CHAT_N_BATCH = 256
"""Differs from the pipeline's default n_batch on purpose: the model cache keys its pools by
(file, n_ctx, n_threads, n_batch, chat format), so chat gets contexts (KV caches) of its own."""
CHAT_SLOTS = 2


def chat_backend(
    model: str = DEFAULT_CHAT_MODEL,
    *,
    chat_format: str | None = None,
    n_ctx: int | None = None,
    run_config: RunConfig | None = None,
) -> Backend:
    """A backend for chat: a bundled model by name, a GGUF path, or ``server:NAME`` from the run config.

    ``chat_format`` (see `chat_format.resolve_chat_format`) and ``n_ctx`` apply to a GGUF;
    ``run_config`` is where a server model is looked up (default: the run config in force).
    """
    from actors.backends.factory import build_backend
    from actors.run_config import BUNDLED_NAMES, LlamaCppConfig

    if model.startswith(SERVER_PREFIX):
        return server_backend(model.removeprefix(SERVER_PREFIX), run_config)
    if model not in BUNDLED_NAMES:
        model = str(Path(model).expanduser().resolve())
    config = LlamaCppConfig(
        model=model,
        n_batch=CHAT_N_BATCH,
        slots=CHAT_SLOTS,
        timeout_s=None,
        chat_format=chat_format or "auto",
        n_ctx=n_ctx,
    )
    return build_backend("chat", config)


def server_backend(name: str, run_config: RunConfig | None = None) -> Backend:
    """The run config's OpenAI-compatible backend ``name``; `CoachError` naming the ones there are."""
    from actors.backends.factory import build_backend
    from actors.run_config import OpenAIConfig, load_run_config

    config = run_config if run_config is not None else load_run_config()
    backend = config.backends.get(name)
    if not isinstance(backend, OpenAIConfig):
        servers = [n for n, b in config.backends.items() if isinstance(b, OpenAIConfig)]
        where = str(config.source) if config.source else "the run config (none set: $COACH_RUN_CONFIG)"
        raise CoachError(
            f"no OpenAI-compatible backend {name!r} in {where}; "
            f"server models there: {', '.join(servers) if servers else 'none'}"
        )
    return build_backend(name, backend, config)


def tailored(backend: Backend, *, chat_format: str | None = None, n_ctx: int | None = None) -> Backend:
    """The same GGUF backend with this chat format and window (a new backend when either differs).

    Other backends (a server, a test's script) come back as they are: their template and window
    are their own.
    """
    config = getattr(backend, "config", None)
    if backend.kind != "llama_cpp" or config is None:
        return backend
    changes = {}
    if chat_format and chat_format != config.chat_format:
        changes["chat_format"] = chat_format
    if n_ctx and n_ctx != config.n_ctx:
        changes["n_ctx"] = n_ctx
    if not changes:
        return backend
    from actors.backends.factory import build_backend

    return build_backend(backend.name, config.model_copy(update=changes))


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
    """Builds prompts with a stable prefix and streams replies (see the module docstring).

    ``context_length`` caps the window the prompt may use (a conversation's own setting; the
    model's window when None or larger). ``stops``: end-of-turn markers; a reply that writes one
    as text (a model whose file does not mark it special) is cut there, and its generation ends.
    """

    def __init__(
        self,
        backend: Backend,
        system_prompt: str,
        *,
        max_tokens: int = REPLY_MAX_TOKENS,
        temperature: float = 0.7,
        context_length: int | None = None,
        stops: Sequence[str] = (),
    ) -> None:
        self.backend = backend
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.context_length = context_length
        self.stops = tuple(s for s in stops if s)
        self.window_start = 0
        self.last = TurnStats()
        self.steered: dict[int, tuple[str, str]] = {}
        """History index of each user message a reply was steered for → (its words, the instruction)."""

    async def warm(self) -> None:
        """Load the model and read the system prompt now, while the person is still typing.

        The first reply of a conversation would otherwise pay for both; after
        this its prompt shares the cached system-prompt prefix.
        """
        messages = [Message(role="system", content=self.system_prompt), Message(role="user", content="Hello")]
        async for _ in self.backend.stream(messages, max_tokens=1, temperature=0.0):
            pass

    def reset(self) -> None:
        """A different conversation: start the window from its beginning, with nothing steered."""
        self.window_start = 0
        self.steered = {}

    def messages(self, history: Sequence[ChatMessage], start: int | None = None) -> list[Message]:
        """The prompt for ``history`` from ``start``: earlier steered messages as the model read them."""
        start = self.window_start if start is None else start
        out = [Message(role="system", content=self.system_prompt)]
        for index, m in enumerate(history[start:], start):
            if m.role not in ("user", "assistant"):
                continue
            words, steering = self.steered.get(index, (None, ""))
            content = with_instruction(m.content, steering) if words == m.content else m.content
            out.append(Message(role=m.role, content=content))
        return out

    async def fit(self, history: Sequence[ChatMessage], *, reserve: int = 0) -> list[Message]:
        """The prompt for the next reply; moves the window start only when it must, and then far.

        ``reserve``: tokens to keep free besides the reply's (the crisis instructions are in the prompt already).

        A local model's window and token counts are read on a worker thread, all in one trip
        (`fit_now`): each trip back to the event loop waits for whatever the loop is doing,
        and while a turn starts the loop is drawing the person's message (a layout of the
        screen, longer the more turns are on it). One trip, not one per count.
        """
        if self.backend.kind == "llama_cpp":
            return await anyio.to_thread.run_sync(self.fit_now, history, reserve)
        return self.fit_now(history, reserve)

    def fit_now(self, history: Sequence[ChatMessage], reserve: int = 0) -> list[Message]:
        """`fit`, blocking (a local model tokenizes here): call it from a worker thread."""
        window = self.backend.context_window
        window = min(window, self.context_length) if self.context_length else window
        budget = window - self.max_tokens - 16 - reserve
        if self.window_start >= len(history):
            self.window_start = 0
        messages = self.messages(history)
        if self.backend.count_tokens(messages) <= budget:
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
            if self.backend.count_tokens(messages) <= budget // 2:
                break
        self.window_start = start
        return messages

    def _remember(self, history: Sequence[ChatMessage], steering: str) -> None:
        """Record this turn's instruction (or that it has none) for the newest user message.

        The instruction goes to the prompt only, never to the stored history, after the
        person's words, so the cached prefix (everything before it) is untouched. It sits with
        the user's words rather than in the system prompt because some chat templates (Gemma's)
        have no mid-conversation system turn. Later prompts show that message as the model read
        it (see `messages`): a prompt is then always the previous one plus what followed, and
        llama.cpp reads only the new message, not the steered turn's whole reply again. Later
        messages are not steered unless their own words ask for it.
        """
        users = [i for i, m in enumerate(history) if m.role == "user"]
        if not users:
            return
        index = users[-1]
        if steering:
            self.steered[index] = (history[index].content, steering)
        else:
            self.steered.pop(index, None)

    async def reply(self, history: Sequence[ChatMessage], *, steering: str = "") -> AsyncIterator[str]:
        """The assistant's answer to the history's last user message, piece by piece.

        ``steering`` is the safety net's instruction for this turn (empty when
        the message carries no crisis signal); see `_remember`.
        """
        started = time.perf_counter()
        self._remember(history, steering)
        messages = await self.fit(history)
        stats = TurnStats(prompt_messages=len(messages), window_start=self.window_start)
        self.last = stats
        cut = StopCutter(self.stops)
        stream = self.backend.stream(messages, max_tokens=self.max_tokens, temperature=self.temperature)
        try:
            async for piece in stream:
                if stats.first_token_s is None:
                    stats.first_token_s = time.perf_counter() - started
                stats.pieces += 1
                text = cut.feed(piece)
                if text:
                    yield text
                if cut.stopped:
                    break
            if rest := cut.flush():
                yield rest
        finally:
            stats.total_s = time.perf_counter() - started
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # a reply cut at a stop marker ends its generation now


def with_instruction(words: str, steering: str) -> str:
    """The person's words, then the safety net's instruction marked as not theirs (none: the words)."""
    if not steering:
        return words
    return f"{words}\n\n[Instruction for the assistant, not written by the user: {steering.strip()}]"


class StopCutter:
    """Passes streamed text through until a stop marker appears, then nothing more.

    Text that may be the start of a marker (``<|im_`` before ``end|>``) is held back until the
    next piece shows whether it is one, so no half marker ever reaches the screen.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text = self.held + piece
        ends = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if ends:
            self.stopped, self.held = True, ""
            return text[: min(ends)]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self.held = ("" if self.stopped else self.held), ""
        return held
