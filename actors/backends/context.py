"""Fitting a request into a model's context window: the one documented trimming rule.

A request needs ``prompt tokens + max_tokens <= window``. When it does not fit,
the role's ``on_overflow`` decides:

* ``refuse``: raise ``ContextOverflow`` and send nothing. Judges and fixups
  default to this: judging a shortened transcript would judge a different one.
* ``trim``: drop the oldest exchanges until it fits, where

  - every system message is kept (the system prompt, persona and any shared
    context live there);
  - the last message is kept (it is what is being answered);
  - of the rest, the oldest *exchange* goes first: a user message together
    with the assistant replies that follow it (leading assistant messages
    form an exchange of their own), so what remains still starts on a user
    turn and never keeps an answer whose question was dropped;
  - if the messages that must be kept still do not fit, it is refused anyway.

  The number of messages dropped is returned so it lands in
  ``Usage.trimmed_messages``.

This is a pure function over an injected token counter, so the rule is tested
without a model, and every backend applies the same rule with its own count
(exact for llama.cpp, an estimate for remote APIs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from state.errors import CoachError

from .types import Message

OnOverflow = Literal["trim", "refuse"]


class ContextOverflow(CoachError):
    """The request cannot fit the window (refused, or trimming could not make it fit)."""

    def __init__(self, needed: int, window: int, max_tokens: int, detail: str) -> None:
        self.needed, self.window, self.max_tokens = needed, window, max_tokens
        super().__init__(
            f"request needs {needed} tokens (prompt {needed - max_tokens} + max_tokens {max_tokens}) "
            f"but the context window is {window}; {detail}"
        )


@dataclass(frozen=True)
class Fitted:
    messages: list[Message]
    trimmed: int
    prompt_tokens: int


def exchanges(messages: Sequence[Message]) -> list[list[int]]:
    """Indices of the droppable messages grouped into exchanges, oldest first.

    System messages and the last message are never droppable, so they are in
    no group.
    """
    groups: list[list[int]] = []
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message.role == "system" or index == last:
            continue
        if message.role == "user" or not groups:
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups


def fit_messages(
    messages: Sequence[Message],
    *,
    window: int,
    max_tokens: int,
    count_tokens: Callable[[Sequence[Message]], int],
    on_overflow: OnOverflow,
) -> Fitted:
    """Return the messages to send (maybe trimmed) or raise ``ContextOverflow``."""
    if not messages:
        raise ValueError("a request needs at least one message")
    kept = list(messages)
    needed = count_tokens(kept) + max_tokens
    if needed <= window:
        return Fitted(kept, 0, needed - max_tokens)
    if on_overflow == "refuse":
        raise ContextOverflow(needed, window, max_tokens, "this role refuses to trim (on_overflow: refuse)")
    dropped: set[int] = set()
    for group in exchanges(messages):
        dropped.update(group)
        kept = [m for i, m in enumerate(messages) if i not in dropped]
        needed = count_tokens(kept) + max_tokens
        if needed <= window:
            return Fitted(kept, len(dropped), needed - max_tokens)
    raise ContextOverflow(needed, window, max_tokens, "even the system messages and the last message alone do not fit")
