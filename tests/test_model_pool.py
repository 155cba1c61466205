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


def test_a_family_of_calls_keeps_its_context_when_the_shared_prefix_is_under_half(smollm2_path: Path):
    """The judge's criteria over a short transcript share less than half of each prompt: the hint keeps them
    on the context holding the transcript, where the share rule alone loaded a cold context for each."""
    pool = ModelPool(smollm2_path, n_ctx=256, n_threads=1, n_batch=64, chat_format="auto", label="smollm2")
    pool.allow(3)
    shared, first_tail, next_tail = list(range(100, 120)), list(range(300, 330)), list(range(400, 430))
    try:
        slot = pool.acquire(shared + first_tail, "judge:t1")
        assert slot is pool.slots[0] and len(pool.slots) == 1  # the loaded, unused context: no second one
        slot.llm.eval(shared + first_tail)
        pool.release(slot)

        again = pool.acquire(shared + next_tail, "judge:t1")
        assert again is slot and again.common_prefix(shared + next_tail) == len(shared)
        pool.release(again)

        unhinted = pool.acquire(shared + next_tail)  # 20 of 50 tokens: too little to take that context
        assert unhinted is not slot and len(pool.slots) == 2
        pool.release(unhinted)
        stranger = pool.acquire(shared + next_tail, "judge:t2")  # another family: no claim on either
        assert stranger.family == "judge:t2" and slot.family == "judge:t1"
        pool.release(stranger)
    finally:
        pool.close()
