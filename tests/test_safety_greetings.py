"""A greeting never raises the crisis panel: the chat's first word is usually one.

None of these is in the training files (a shipped classifier once flagged plain "hello").
"""

from __future__ import annotations

import pytest

from actors.safety import load_safety_net

GREETINGS = [
    "hello there!",
    "hiya",
    "good afternoon",
    "hey, how are you?",
    "hi, I'm back after a busy week",
    "hola, ¿qué tal?",
    "salut, ça va ?",
    "hallo zusammen",
    "olá, tudo bem?",
    "ciao a tutti",
]


@pytest.mark.parametrize("text", GREETINGS)
def test_a_greeting_is_not_a_crisis(pack, text):
    verdict = load_safety_net(pack).check(text)
    assert not verdict.flagged, verdict.signals
