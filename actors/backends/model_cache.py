"""Loaded GGUF models, shared by the whole process, as pools of contexts with prefix affinity.

A model is loaded once per (file, n_ctx, n_threads, n_batch, chat format) and every backend
and role naming it shares it. What is shared is a ``ModelPool`` of *slots*:
each slot is one ``llama_cpp.Llama``, i.e. one llama.cpp context with its own
KV cache, used by one call at a time (the slot is checked out under the pool's
lock, inside the worker thread, so this holds across event loops: the CLI,
the TUI and each test run their own).

Why slots. Prefix reuse lives in the KV cache: llama-cpp-python keeps the
previous call's tokens (``Llama._input_ids``) and ``Llama.generate`` evaluates
only what follows the longest common prefix with the new prompt. A pipeline
interleaves prompt families (user simulator and assistant of several
transcripts, 17 judge questions over one transcript); with a single context
every switch would evaluate the whole prompt again. Like llama.cpp's own
server (``--parallel`` with prompt-similarity slot selection), a call here
takes the free slot whose cached tokens share the longest prefix with its
prompt. When none shares at least half of it, a slot that holds nothing yet
is taken, or, while the pool may grow, a new slot is loaded (model weights
are memory-mapped; each slot adds its KV cache); otherwise the least
recently used free slot is taken. A caller that knows its calls share a
prefix says so (`cache_hint`: the judge's criteria over one transcript), and
such a call goes to the slot its family last used whatever the share.

Reporting reuse honestly: each slot wraps ``Llama.eval`` and records how many
tokens each evaluation took; the first evaluation of a completion is the part
of the prompt that was *not* reused. Counting what was evaluated (rather than
predicting it) stays right when llama.cpp cannot trim a KV cache (recurrent
models) and re-evaluates everything.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel

from state.errors import CoachError

from .chat_templates import ChatFormat, formatter_for
from .fd_guard import keep_terminal_output

keep_terminal_output()

DEFAULT_MAX_N_CTX = 8192
# A free slot is "good enough" when it already holds at least this share of the prompt.
AFFINITY_SHARE = 0.5

# llama-cpp-python forwards llama.cpp's C log through this logger, printing
# everything while its level is unset (Llama(verbose=False) sets it; a bare
# metadata probe does not). Quiet by default; configure the logger to see it.
_llama_log = logging.getLogger("llama-cpp-python")
if _llama_log.level == logging.NOTSET:
    _llama_log.setLevel(logging.ERROR)


@dataclass
class Slot:
    """One llama.cpp context of a pooled model; used by one call at a time."""

    llm: llama_cpp.Llama
    index: int
    eval_sizes: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: float = 0.0
    family: str | None = None
    """The prefix family of the last call it served (`cache_hint`): the next call of that family comes here."""

    def instrument(self) -> None:
        """Record the size of every ``eval`` call (see module docstring)."""
        original = self.llm.eval

        def counting_eval(tokens: Any) -> None:
            self.eval_sizes.append(len(tokens))
            return original(tokens)

        self.llm.eval = counting_eval  # type: ignore[method-assign]

    def common_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of ``tokens`` this slot's KV cache already holds."""
        cached = self.llm.input_ids[: self.llm.n_tokens]
        n = min(len(cached), len(tokens))
        if n == 0:
            return 0
        differ = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
        return int(differ[0]) if differ.size else n

    def prompt_evaluated(self, prompt_tokens: int) -> int:
        """Prompt tokens the last completion actually evaluated (its first ``eval``)."""
        return self.eval_sizes[0] if self.eval_sizes else prompt_tokens


THREADS_VARIABLE = "COACH_LLAMA_THREADS"


def threads_from_environment() -> int | None:
    """llama.cpp's thread count when the config names none: ``COACH_LLAMA_THREADS``, if set.

    Why: processes sharing a small machine (the app and a CLI run, parallel test
    workers) each start as many threads as there are cores, and llama.cpp's
    threads wait for one another after every operation: with more threads than
    cores, most of a prompt's time went on waiting for a descheduled thread.
    """
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        raise CoachError(f"{THREADS_VARIABLE}={value!r} is not a number of threads") from None
    if threads < 1:
        raise CoachError(f"{THREADS_VARIABLE}={value!r}: the number of threads must be 1 or more")
    return threads


class ModelPool:
    """Up to ``max_slots`` contexts of one model, handed out by prefix affinity."""

    def __init__(
        self, path: Path, *, n_ctx: int, n_threads: int | None, n_batch: int, chat_format: ChatFormat, label: str
    ):
        self.path, self.n_ctx, self.n_threads, self.n_batch = path, n_ctx, n_threads, n_batch
        self.max_slots = 1
        self.slots: list[Slot] = []
        self._cond = threading.Condition()
        self._loading = 0
        self.closing = threading.Event()
        """Set when the pool is being freed: calls in flight stop at their next token (see close)."""
        first = self._new_slot()
        self.formatter = formatter_for(first.llm, chat_format, label or path.name)
        first.index = 0
        self.slots.append(first)

    @property
    def primary(self) -> llama_cpp.Llama:
        """A context for work that does not touch the KV cache (tokenizing, metadata)."""
        return self.slots[0].llm

    def _new_slot(self) -> Slot:
        threads = self.n_threads or threads_from_environment()
        llm = llama_cpp.Llama(
            str(self.path),
            n_ctx=self.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=min(self.n_batch, self.n_ctx),
            verbose=False,
        )
        if "chat_template.default" in llm._chat_handlers:
            # llama-cpp-python may guess a built-in format instead of the file's own
            # template; pin the template so direct create_chat_completion calls and
            # this backend render identical prompts.
            llm.chat_format = "chat_template.default"
        slot = Slot(llm, index=-1)
        slot.instrument()
        return slot

    def allow(self, slots: int) -> None:
        with self._cond:
            self.max_slots = max(self.max_slots, slots)

    @contextmanager
    def checkout(self, tokens: Sequence[int], family: str | None = None) -> Iterator[Slot]:
        """A slot for this prompt, held for the block (blocking: call from a worker thread)."""
        slot = self.acquire(tokens, family)
        try:
            yield slot
        finally:
            self.release(slot)

    def acquire(self, tokens: Sequence[int], family: str | None = None) -> Slot:
        """The free slot holding this call's family (see `cache_hint`), else the one sharing the longest prefix
        when it shares at least half of the prompt, else an unused slot, else a new slot while the pool may
        grow, else the least recently used."""
        with self._cond:
            while True:
                free = [s for s in self.slots if not s.busy]
                kin = [s for s in free if family is not None and s.family == family]
                best = max(kin or free, key=lambda s: (s.common_prefix(tokens), -s.last_used), default=None)
                good = best is not None and (bool(kin) or best.common_prefix(tokens) >= AFFINITY_SHARE * len(tokens))
                empty = next((s for s in free if s.llm.n_tokens == 0), None)  # as cold as a new one, already loaded
                if (
                    good
                    or empty is not None
                    or (best is not None and len(self.slots) + self._loading >= self.max_slots)
                ):
                    slot = best if good else empty or min(free, key=lambda s: s.last_used)
                    slot.busy, slot.family = True, family
                    return slot
                if len(self.slots) + self._loading < self.max_slots:
                    self._loading += 1
                    break
                self._cond.wait()
        try:  # load outside the lock: other calls keep using the existing slots meanwhile
            slot = self._new_slot()
        finally:
            with self._cond:
                self._loading -= 1
                self._cond.notify_all()
        with self._cond:
            slot.busy, slot.family = True, family
            slot.index = len(self.slots)
            self.slots.append(slot)
            return slot

    def release(self, slot: Slot) -> None:
        with self._cond:
            slot.busy = False
            slot.last_used = time.monotonic()
            self._cond.notify_all()

    def close(self, timeout: float = 120.0) -> None:
        """Free every context once no call is using one and no slot is loading.

        Why wait: freeing a context under a thread that is still evaluating on
        it (a chat warming its prompt when the person quits) crashed the
        process. Calls in flight read `closing` and end at their next token.
        """
        self.closing.set()
        with self._cond:
            self._cond.wait_for(lambda: self._loading == 0 and not any(s.busy for s in self.slots), timeout)
            for slot in self.slots:
                slot.llm.close()
            self.slots.clear()


_pools: dict[tuple[str, int, int | None, int, str], ModelPool] = {}
_trained_ctx: dict[str, int] = {}
_registry_lock = threading.Lock()


def trained_context(path: Path) -> int:
    """The window the model was trained with, read from GGUF metadata without loading weights."""
    key = str(path)
    if key not in _trained_ctx:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        # The internal wrapper reads metadata without creating a context (Llama(vocab_only=True)
        # would create one and log a spurious "n_ctx_train (0)" warning).
        probe = LlamaModel(path_model=key, params=params, verbose=False)
        try:
            metadata = probe.metadata()
        finally:
            probe.close()
        arch = metadata.get("general.architecture", "")
        _trained_ctx[key] = int(metadata.get(f"{arch}.context_length", 0) or 0) or DEFAULT_MAX_N_CTX
    return _trained_ctx[key]


def default_n_ctx(path: Path) -> int:
    """The trained window, capped at 8192 so a default run does not reserve a 32K KV cache."""
    return min(trained_context(path), DEFAULT_MAX_N_CTX)


def get_pool(
    path: Path,
    *,
    n_ctx: int,
    n_threads: int | None = None,
    n_batch: int = 512,
    slots: int = 1,
    chat_format: ChatFormat = "auto",
    label: str = "",
) -> ModelPool:
    """The shared pool for these settings, loading its first slot on first use (call from a worker thread)."""
    key = (str(path), n_ctx, n_threads, n_batch, chat_format)
    with _registry_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ModelPool(
                path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, chat_format=chat_format, label=label
            )
            _pools[key] = pool
    pool.allow(slots)
    return pool


def release_all() -> None:
    """Free every loaded model (tests, and a TUI switching runs). Models reload on next use."""
    with _registry_lock:
        loaded = list(_pools.values())
        _pools.clear()
    for pool in loaded:
        pool.close()
