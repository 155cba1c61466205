"""The embedded default: llama-cpp-python in this process, no network, no GPU.

Every call renders the prompt with the model's own chat template, tokenizes
it, and hands llama.cpp the token list (``create_completion(prompt=tokens)``),
the same steps ``create_chat_completion`` takes, done here so that

* ``prompt_tokens`` is the exact count the model saw, and a prompt that would
  not fit ``n_ctx`` is refused before llama.cpp ever sees it (``max_tokens``
  is clamped to what is left of the window);
* the part of the prompt that was served from the KV cache of the previous
  call is reported as ``cached_tokens`` (measured, see ``model_cache``);
* structured answers are decoded under a grammar built from the JSON schema,
  with free strings bounded so a small model cannot run the object past
  ``max_tokens`` without closing it.

Model work runs in a worker thread (``anyio.to_thread``) on a context checked
out of the model's pool (``model_cache``: one call per context at a time, the
context chosen by prefix affinity), so the event loop, and the TUI drawing on
it, never waits on llama.cpp.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from llama_cpp import LlamaGrammar, StoppingCriteriaList

from actors.run_config import LlamaCppConfig

from .base import Backend
from .bundled import BundledModelMissing, bundled_path, is_bundled
from .cache_hint import PREFIX_FAMILY
from .chat_templates import as_dicts
from .errors import BackendError
from .model_cache import ModelPool, default_n_ctx, get_pool
from .structured import (
    bound_strings,
    count_free_strings,
    parse_structured,
    skeleton_chars,
)
from .types import Message, Reply, Usage

# Sampling settings of llama-cpp-python's create_chat_completion defaults; the
# repeat penalty comes from the backend's config (small models loop without one).
SAMPLING = {"top_k": 40, "top_p": 0.95, "min_p": 0.05}
# Contexts kept for a bundled (small) model: enough for a pipeline's interleaved prompt
# families (user simulator, assistant, judge) to each keep their prefix cached.
BUNDLED_SLOTS = 4
# Characters per token assumed when bounding structured answers (see _grammar_for).
CHARS_PER_TOKEN_FLOOR = 2


@lru_cache(maxsize=64)
def _grammar(schema_json: str) -> LlamaGrammar:
    """Compiled once per schema: a judge run asks the same schema thousands of times."""
    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


class LlamaCppBackend(Backend):
    kind = "llama_cpp"
    tokenizes_locally = True

    def __init__(self, name: str, config: LlamaCppConfig, *, model_path: Path | None = None) -> None:
        self.config = config
        self._path = model_path
        self._interrupted = threading.Event()
        self._last_prompt: tuple[tuple, tuple[int, ...], Any, ModelPool] | None = None
        """The last prompt tokenized: (its messages, its tokens, its rendering, the pool); see `tokenize`."""
        super().__init__(
            name, model=config.model, context_window=config.n_ctx or 0, max_concurrency=config.max_concurrency
        )

    def interrupt(self) -> None:
        """End the generations in flight at their next token, and refuse new ones (a run is stopping).

        llama.cpp cannot be cancelled from outside its thread; without this, stopping a run (or
        quitting the app) waits for every call in flight to reach its token limit.
        """
        self._interrupted.set()

    # -- the model ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The GGUF file: a bundled model's file, or the configured path."""
        if self._path is None:
            if not is_bundled(self.config.model):
                self._path = Path(self.config.model)
            else:
                try:
                    self._path = bundled_path(self.config.model)
                except BundledModelMissing as err:
                    raise BackendError(self.name, str(err)) from err
        return self._path

    def _existing_path(self) -> Path:
        if not self.path.is_file():
            raise BackendError(self.name, f"no such GGUF file: {self.path}")
        return self.path

    @property
    def context_window(self) -> int:
        """``n_ctx`` as configured, else the model's trained window capped at 8192 (read from the file)."""
        if not self._context_window:
            self._context_window = self.config.n_ctx or default_n_ctx(self._existing_path())
        return self._context_window

    @property
    def slots(self) -> int:
        """Contexts kept for prefix reuse: as configured, else 4 for a bundled model and 1 for any other GGUF."""
        if self.config.slots is not None:
            return self.config.slots
        return BUNDLED_SLOTS if is_bundled(self.config.model) else 1

    def pool(self) -> ModelPool:
        """The shared model's contexts (loads the first on first use; blocking: call from a worker thread)."""
        path = self._existing_path()
        try:
            return get_pool(
                path,
                n_ctx=self.context_window,
                n_threads=self.config.n_threads,
                n_batch=self.config.n_batch,
                slots=self.slots,
                chat_format=self.config.chat_format,
                label=self.config.model,
            )
        except ValueError as err:  # llama-cpp-python's way of saying the file would not load
            raise BackendError(self.name, f"could not load {path}: {err}") from err

    def tokenize(self, messages: Sequence[Message]) -> tuple[list[int], Any]:
        """The exact prompt tokens for these messages, and the formatter's stop settings.

        The last prompt's tokens are kept: a chat turn counts its prompt (to fit the window)
        and then streams it, and tokenizing a whole conversation twice cost each turn twice
        what the history costs (about 5–10 ms per column by turn 20, growing with it).
        """
        if (prepared := self._prepared(messages)) is not None:
            return prepared[1], prepared[2]
        pool = self.pool()
        rendered = pool.formatter(messages=as_dicts(messages))
        tokens = pool.primary.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        self._last_prompt = (_prompt_key(messages), tuple(tokens), rendered, pool)
        return tokens, rendered

    def _prepared(self, messages: Sequence[Message]) -> tuple[ModelPool, list[int], Any] | None:
        """The pool, tokens and rendering of the prompt last tokenized, if it is this one (no thread needed)."""
        last = self._last_prompt
        if last is None or last[3].closing.is_set() or last[0] != _prompt_key(messages):
            return None
        return last[3], list(last[1]), last[2]

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenize(messages)[0])

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Reply:
        started = time.perf_counter()
        result, usage = await anyio.to_thread.run_sync(
            self._complete_sync, list(messages), schema, max_tokens, temperature, seed, PREFIX_FAMILY.get()
        )
        text = result["choices"][0]["text"]
        reply = Reply(
            text=text,
            usage=usage,
            latency_s=time.perf_counter() - started,
            backend=self.name,
            model=self.config.model,
        )
        if schema is not None:
            data, error = parse_structured(text, schema)
            if error and result["choices"][0].get("finish_reason") == "length":
                error += f" (the answer hit max_tokens={max_tokens})"
            reply = reply.model_copy(update={"data": data, "structured_error": error})
        return reply

    def _complete_sync(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        family: str | None = None,
    ) -> tuple[dict[str, Any], Usage]:
        pool = self.pool()
        tokens, rendered = self.tokenize(messages)
        budget = self._budget(pool, tokens, max_tokens)
        grammar = self._grammar_for(schema, budget)
        deadline = _Deadline(self.config.timeout_s, self._interrupted, pool.closing)
        if self._interrupted.is_set():
            raise BackendError(self.name, "interrupted: the run is stopping")
        with pool.checkout(tokens, family) as slot:
            slot.eval_sizes.clear()
            try:
                result = slot.llm.create_completion(
                    prompt=tokens,
                    max_tokens=budget,
                    temperature=temperature,
                    seed=seed,
                    stop=rendered.stop,
                    stopping_criteria=deadline.extend(rendered.stopping_criteria),
                    grammar=grammar,
                    **SAMPLING,
                    # No penalty under a grammar: JSON repeats its quotes and keys by design.
                    repeat_penalty=1.0 if grammar is not None else self.config.repeat_penalty,
                )
            except (ValueError, RuntimeError) as err:
                raise BackendError(self.name, f"llama.cpp failed: {err}") from err
            evaluated = slot.prompt_evaluated(len(tokens))
        deadline.check(self.name)
        usage = Usage(
            prompt_tokens=len(tokens),
            cached_tokens=max(0, len(tokens) - evaluated),
            completion_tokens=result["usage"]["completion_tokens"],
        )
        return result, usage

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> AsyncIterator[str]:
        """Text pieces as llama.cpp produces them, from a generation on a thread of its own.

        Stopping early (closing this generator, cancelling the reader) ends
        the generation at its next token; its thread then returns the slot.
        """
        # A prompt just counted (a chat turn fits its window first) starts with no trip to a
        # worker thread and back: that trip waits for the event loop, busy drawing the turn.
        if (prepared := self._prepared(messages)) is not None:
            pool, tokens, rendered = prepared
        else:
            pool = await anyio.to_thread.run_sync(self.pool)
            tokens, rendered = await anyio.to_thread.run_sync(self.tokenize, list(messages))
        if self._interrupted.is_set():
            raise BackendError(self.name, "interrupted: the run is stopping")
        settings = {
            "max_tokens": self._budget(pool, tokens, max_tokens),
            "temperature": temperature,
            "seed": seed,
            "stop": rendered.stop,
            **SAMPLING,
            "repeat_penalty": self.config.repeat_penalty,
        }
        call = _StreamedCall(pool, tokens, settings, rendered.stopping_criteria, self._interrupted)
        call.start()
        try:
            while (piece := await anyio.to_thread.run_sync(call.pieces.get, abandon_on_cancel=True)) is not _END:
                if isinstance(piece, Exception):
                    raise BackendError(self.name, f"llama.cpp failed: {piece}") from piece
                yield piece
        finally:
            call.stop.set()

    async def health(self) -> str:
        pool = await anyio.to_thread.run_sync(self.pool)
        return f"loaded {pool.path.name} (n_ctx {pool.n_ctx}, up to {pool.max_slots} slots, {pool.primary.n_vocab()} token vocabulary)"

    # -- helpers -----------------------------------------------------------------------------

    def _budget(self, pool: ModelPool, tokens: list[int], max_tokens: int) -> int:
        """``max_tokens`` clamped to the window; a prompt that leaves no room is refused."""
        room = pool.n_ctx - len(tokens)
        if room < 1:
            raise BackendError(
                self.name, f"prompt is {len(tokens)} tokens but the model's window (n_ctx) is {pool.n_ctx}"
            )
        return min(max_tokens, room)

    def _grammar_for(self, schema: dict[str, Any] | None, max_tokens: int) -> LlamaGrammar | None:
        """A grammar for the schema, with every free string bounded so the object can close in budget.

        The JSON's fixed part (keys, punctuation, enum values) is counted at
        two characters per token; what is left of ``max_tokens`` is shared by
        the free strings, again at two characters per token, a floor well
        under English text's three to four. A model that writes fewer
        characters per token can still run out, and that answer is an ERROR.
        The schema's property order is kept: put the verdict first.
        """
        if schema is None:
            return None
        strings = max(1, count_free_strings(schema))
        room = max_tokens - skeleton_chars(schema) // CHARS_PER_TOKEN_FLOOR
        limit = max(8, min(self.config.max_string_chars, room * CHARS_PER_TOKEN_FLOOR // strings))
        try:
            return _grammar(json.dumps(bound_strings(schema, limit)))
        except (ValueError, KeyError, NotImplementedError) as err:
            raise BackendError(self.name, f"cannot turn the JSON schema into a grammar: {err}") from err


def _prompt_key(messages: Sequence[Message]) -> tuple[tuple[str, str], ...]:
    """What makes two prompts the same prompt (see `LlamaCppBackend.tokenize`)."""
    return tuple((m.role, m.content) for m in messages)


_END = object()
"""What a streamed call's thread puts last, however its generation ended."""


class _StreamedCall:
    """One streamed generation on a thread of its own, which holds the slot from first token to last.

    Why its own thread: a slot may go back to the pool, and a model be freed, only once llama.cpp
    is done with it. When each token was fetched by a separate worker call, a reader that stopped
    early (Esc in the chat, quitting the app) closed the generator while a worker was still inside
    it ("generator already executing"), handed the slot back under it, and freeing the model then
    crashed the process. The thread is not a daemon: the interpreter waits for it at exit, and
    `stop`, the backend's interrupt and the pool closing each end it at the next token.
    """

    def __init__(
        self,
        pool: ModelPool,
        tokens: list[int],
        settings: dict[str, Any],
        criteria: StoppingCriteriaList | None,
        interrupted: threading.Event,
    ) -> None:
        self.pool, self.tokens, self.settings = pool, tokens, settings
        self.stop = threading.Event()
        self.pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._criteria = StoppingCriteriaList([*(criteria or []), self._stopped])
        self._interrupted = interrupted
        self._thread = threading.Thread(target=self._run, name="llama-stream")

    def start(self) -> None:
        self._thread.start()

    def _stopped(self, _tokens: Any, _logits: Any) -> bool:
        return self.stop.is_set() or self._interrupted.is_set() or self.pool.closing.is_set()

    def _run(self) -> None:
        try:
            with self.pool.checkout(self.tokens) as slot:
                chunks = slot.llm.create_completion(
                    prompt=self.tokens, stream=True, stopping_criteria=self._criteria, **self.settings
                )
                with closing(chunks):
                    for chunk in chunks:
                        if text := chunk["choices"][0]["text"]:
                            self.pieces.put(text)
                        if self._stopped(None, None):
                            break
        except Exception as err:  # noqa: BLE001 - handed to the reader, who raises it as a BackendError
            self.pieces.put(err)
        finally:
            self.pieces.put(_END)


class _Deadline:
    """Stops a generation that runs past ``timeout_s``, or is interrupted (llama.cpp cannot be otherwise)."""

    def __init__(self, timeout_s: float | None, *interruptions: threading.Event) -> None:
        self.timeout_s = timeout_s
        self.until = time.monotonic() + timeout_s if timeout_s else None
        self.interruptions = interruptions
        self.expired = False

    @property
    def interrupted(self) -> bool:
        return any(event.is_set() for event in self.interruptions)

    def extend(self, criteria: StoppingCriteriaList | None) -> StoppingCriteriaList | None:
        if self.until is None and not self.interruptions:
            return criteria
        combined = StoppingCriteriaList(list(criteria or []))
        combined.append(self._check)
        return combined

    def _check(self, _tokens: Any, _logits: Any) -> bool:
        if self.interrupted:
            return True
        self.expired = self.until is not None and time.monotonic() > self.until
        return self.expired

    def check(self, backend: str) -> None:
        if self.interrupted:
            raise BackendError(backend, "interrupted: the run is stopping")
        if self.expired:
            raise BackendError(backend, f"generation timed out after {self.timeout_s}s", retryable=True)
