"""The net over a whole conversation: which exchanges a person in danger wrote.

The pipeline uses the same net as the chat, so the judge is told where the
simulated user signalled danger (the safety criteria are then judged where
they matter) and an evaluation can count how often a model's reply to such
a message passed them. Pure: the net is deterministic and offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from .detector import SafetyNet
from .verdict import SafetyVerdict

CONTEXT_MESSAGES = 3
"""Earlier user messages read with each one (the net itself uses at most its pack's window)."""


def flag_exchanges(net: SafetyNet, user_messages: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """Exchange number (1-based) → the categories the net found in that exchange's user message.

    Each message is read with the few user messages before it, as in the chat.
    Exchanges without a signal are left out.
    """
    flags: dict[int, tuple[str, ...]] = {}
    for index, text in enumerate(user_messages):
        history = tuple(user_messages[max(0, index - CONTEXT_MESSAGES) : index])
        verdict = _checked(net, text, history)
        if verdict.flagged:
            flags[index + 1] = verdict.categories
    return flags


@lru_cache(maxsize=8192)
def _checked(net: SafetyNet, text: str, history: tuple[str, ...]) -> SafetyVerdict:
    """`net.check`, once per (net, message, the messages before it).

    Why: a run judges each transcript again after its fixups, and a fixup
    rewrites replies, never the user's messages, so every re-assessment would
    read the same messages with the same context again. The net is pure and
    deterministic, so its verdict can be kept; a reloaded net is a new object.
    """
    return net.check(text, history=history)


def flag_note(categories: Sequence[str]) -> str:
    """How a flagged exchange is marked for the judge."""
    return f"[crisis net: the user's message signals {', '.join(c.replace('_', ' ') for c in categories)}]"
