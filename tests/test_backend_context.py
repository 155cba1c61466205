"""The context-window rule: keep system messages and the last message, drop the oldest exchanges."""

from __future__ import annotations

import pytest

from actors.backends import ContextOverflow, Message, fit_messages
from actors.backends.context import exchanges
from actors.backends.router import surely_fits


def m(role: str, content: str) -> Message:
    return Message(role=role, content=content)


def words(messages) -> int:
    """A toy tokenizer: one token per word, plus one per message."""
    return sum(len(x.content.split()) + 1 for x in messages)


def conversation(turns: int) -> list[Message]:
    out = [m("system", "persona and rules")]  # 4 tokens
    for i in range(turns):
        out += [m("user", f"question {i} " + "x " * 8), m("assistant", f"answer {i} " + "y " * 8)]  # 11 each
    out.append(m("user", "the last question"))  # 4 tokens
    return out


def test_fits_untouched():
    msgs = conversation(2)
    fitted = fit_messages(msgs, window=100, max_tokens=10, count_tokens=words, on_overflow="trim")
    assert fitted.messages == msgs and fitted.trimmed == 0
    assert fitted.prompt_tokens == words(msgs)


def test_trim_drops_oldest_exchanges_whole_and_keeps_system_and_last():
    msgs = conversation(3)  # 4 + 6*11 + 4 = 74 tokens
    fitted = fit_messages(msgs, window=60, max_tokens=10, count_tokens=words, on_overflow="trim")
    # 74 + 10 > 60: dropping one exchange (22) gives 52+10 = 62 > 60; two give 30+10 = 40.
    assert fitted.trimmed == 4
    assert [x.content.split()[0] for x in fitted.messages] == ["persona", "question", "answer", "the"]
    assert fitted.messages[1].content.startswith("question 2")
    assert fitted.messages[0].role == "system" and fitted.messages[-1].content == "the last question"
    assert words(fitted.messages) + 10 <= 60


def test_trim_keeps_every_system_message_wherever_it_is():
    msgs = [
        m("system", "a"),
        m("user", "u1 " * 20),
        m("system", "mid-run note"),
        m("assistant", "a1 " * 20),
        m("user", "last"),
    ]
    fitted = fit_messages(msgs, window=20, max_tokens=5, count_tokens=words, on_overflow="trim")
    assert [x.role for x in fitted.messages] == ["system", "system", "user"]
    assert fitted.trimmed == 2


def test_remaining_history_starts_on_a_user_turn():
    msgs = [
        m("system", "s"),
        m("assistant", "greeting " * 10),
        m("user", "u1 " * 10),
        m("assistant", "a1 " * 10),
        m("user", "last"),
    ]
    fitted = fit_messages(msgs, window=30, max_tokens=2, count_tokens=words, on_overflow="trim")
    # The leading assistant greeting is an exchange of its own and goes first.
    assert fitted.trimmed == 1
    assert [x.role for x in fitted.messages] == ["system", "user", "assistant", "user"]


def test_exchanges_group_user_with_following_replies():
    msgs = [
        m("system", "s"),
        m("user", "1"),
        m("assistant", "2"),
        m("assistant", "3"),
        m("user", "4"),
        m("assistant", "5"),
    ]
    assert exchanges(msgs) == [[1, 2, 3], [4]]  # the last message (5) is never droppable


def test_refuse_raises_without_trimming():
    msgs = conversation(3)
    with pytest.raises(ContextOverflow) as caught:
        fit_messages(msgs, window=60, max_tokens=10, count_tokens=words, on_overflow="refuse")
    assert "needs 84 tokens" in str(caught.value) and "window is 60" in str(caught.value)
    assert "refuses to trim" in str(caught.value)


def test_trim_refuses_when_the_kept_messages_alone_do_not_fit():
    msgs = [m("system", "s " * 50), m("user", "old"), m("assistant", "old"), m("user", "last")]
    with pytest.raises(ContextOverflow, match="system messages and the last message alone"):
        fit_messages(msgs, window=40, max_tokens=5, count_tokens=words, on_overflow="trim")


def test_max_tokens_is_part_of_the_budget():
    msgs = [m("user", "one two three")]  # 4 tokens
    assert fit_messages(msgs, window=8, max_tokens=4, count_tokens=words, on_overflow="refuse").trimmed == 0
    with pytest.raises(ContextOverflow):
        fit_messages(msgs, window=8, max_tokens=5, count_tokens=words, on_overflow="refuse")


def test_surely_fits_is_an_upper_bound():
    short = [m("user", "hello")]
    assert surely_fits(short, window=8192, max_tokens=512)
    assert not surely_fits([m("user", "x" * 9000)], window=8192, max_tokens=512)
