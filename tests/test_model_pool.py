"""The model pool frees a context only when no call is using it.

Freeing a llama.cpp context under a thread still evaluating on it crashed the
app when a person quit while the chat was warming its model (exit 139).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from actors.backends.model_cache import ModelPool


def test_close_waits_for_the_call_holding_a_slot(smollm2_path: Path):
    pool = ModelPool(smollm2_path, n_ctx=256, n_threads=1, n_batch=64, chat_format="auto", label="smollm2")
    slot = pool.acquire([1, 2, 3])
    closed = threading.Event()

    def close() -> None:
        pool.close()
        closed.set()

    closer = threading.Thread(target=close)
    closer.start()
    time.sleep(0.3)
    assert not closed.is_set(), "the pool freed a context a call was still using"
    tokens = slot.llm.tokenize(b"still usable")  # the context is alive while held
    assert tokens
    pool.release(slot)
    closer.join(10)
    assert closed.is_set()
    assert pool.slots == []


def test_threads_come_from_the_environment_when_the_config_names_none(monkeypatch):
    from actors.backends.model_cache import threads_from_environment
    from state.errors import CoachError

    monkeypatch.delenv("COACH_LLAMA_THREADS", raising=False)
    assert threads_from_environment() is None
    monkeypatch.setenv("COACH_LLAMA_THREADS", "3")
    assert threads_from_environment() == 3
    for bad in ("many", "0"):
        monkeypatch.setenv("COACH_LLAMA_THREADS", bad)
        with pytest.raises(CoachError, match="COACH_LLAMA_THREADS"):
            threads_from_environment()
