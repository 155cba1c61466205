"""The every-call shortcuts keep their slow paths' meaning: retries after a bare first try, the
assistant's system message rendered once per pack text, and an insert that needs no id back."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy.dialects import sqlite

from actors.backends.errors import BackendError
from actors.backends.retry import RetryPolicy, structured_retrying, transport_retrying
from actors.backends.types import Reply, Usage
from actors.generation.conversation import Turn, assistant_messages
from state import pipeline as db
from state.models import Exchange
from state.steps import EXCHANGE_KEY, _statement, insert_once
from tests.test_supervisor import make_run

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_retries=2, backoff_initial_s=0.001, backoff_max_s=0.002, structured_retries=1)


def scripted(*outcomes):
    """A call that gives each outcome in turn (an exception is raised), counting its calls."""
    calls = []

    async def call():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call, calls


async def test_a_retryable_first_failure_is_retried_with_tenacitys_count_and_log(caplog):
    call, calls = scripted(BackendError("b", "busy", retryable=True), "answer")
    retrying = transport_retrying(FAST)
    with caplog.at_level(logging.WARNING, logger="coach.backends"):
        assert await retrying(call) == "answer"
    assert len(calls) == 2 and retrying.statistics["attempt_number"] == 2
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "attempt 1 failed (backend 'b' (role -) failed: busy)"
    ]

    call, calls = scripted(*[BackendError("b", "down", retryable=True)] * 3)
    retrying = transport_retrying(FAST)
    with pytest.raises(BackendError, match="down"):
        await retrying(call)
    assert len(calls) == 3 and retrying.statistics["attempt_number"] == 3


async def test_a_first_try_that_succeeds_or_cannot_be_retried_is_final():
    call, calls = scripted("answer")
    retrying = transport_retrying(FAST)
    assert await retrying(call) == "answer" and retrying.statistics["attempt_number"] == 1

    for error in (BackendError("b", "bad key"), ValueError("a bug")):
        call, calls = scripted(error, "never")
        retrying = transport_retrying(FAST)
        with pytest.raises(type(error)):
            await retrying(call)
        assert len(calls) == 1 and retrying.statistics["attempt_number"] == 1


async def test_an_unparsed_structured_answer_is_asked_again_then_returned_as_it_is():
    def reply(error: str | None) -> Reply:
        return Reply(text="x", usage=Usage(), latency_s=0, backend="b", model="m", structured_error=error)

    call, calls = scripted(reply("not JSON"), reply(None))
    assert (await structured_retrying(FAST)(call)).structured_error is None and len(calls) == 2

    call, calls = scripted(reply("not JSON"), reply("still not"), reply(None))
    assert (await structured_retrying(FAST)(call)).structured_error == "still not" and len(calls) == 2


def test_the_assistant_system_message_follows_the_packs_text(pack):
    first = assistant_messages(pack, [Turn("u", "a")], "next")[0].content
    assert pack.system_prompt in first
    edited = replace(pack, system_prompt="A different system prompt.")
    again = assistant_messages(edited, [], "next")[0].content
    assert "A different system prompt." in again and pack.system_prompt not in again
    assert assistant_messages(pack, [], "next")[0].content == first


def test_an_insert_that_needs_no_id_has_no_returning_and_still_happens_once(store, pack):
    sql = str(_statement("sqlite", Exchange.__table__, EXCHANGE_KEY, False).compile(dialect=sqlite.dialect()))
    assert "ON CONFLICT (transcript_id, number) DO NOTHING" in sql and "RETURNING" not in sql
    run_id = make_run(store, pack, n=1, length=2)
    values = dict(transcript_id=f"{run_id}-t0000", number=1, user="u", assistant="", created_at=db.utcnow())
    with store.transaction() as conn:
        assert insert_once(conn, Exchange, values, EXCHANGE_KEY, want_id=False) == 1
        assert insert_once(conn, Exchange, {**values, "user": "again"}, EXCHANGE_KEY, want_id=False) is None
    assert [e.user for e in db.exchanges(store, f"{run_id}-t0000")] == ["u"]
