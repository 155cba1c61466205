"""The crisis instruction and llama.cpp's prefix reuse: a steered turn must not make the next re-read it.

llama.cpp evaluates only what follows the longest common prefix of the new prompt and the
previous one. The instruction rides on the steered message, after the person's words; if the
next prompt showed that message without it, the prompt would diverge there and the whole
steered reply would be read again. So every prompt must be the previous prompt plus what
followed (the reply, the new message), steered or not.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from actors.chat.engine import ChatEngine
from state.chat import Conversation
from tests.tui_support import StreamingBackend

pytestmark = pytest.mark.anyio

INSTRUCTION = "Stay with the person and point to emergency services now."


async def turn(engine: ChatEngine, conversation: Conversation, words: str, steering: str = "") -> None:
    conversation.add("user", words)
    reply = "".join([piece async for piece in engine.reply(conversation.messages, steering=steering)])
    conversation.add("assistant", reply.strip())


def as_pairs(prompt) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in prompt]


async def test_each_prompt_extends_the_previous_one_after_a_steered_turn():
    backend = StreamingBackend("I hear you.")
    engine = ChatEngine(backend, "You are a coach.")
    conversation = Conversation(id="c")
    await turn(engine, conversation, "Work was a lot this week.")
    await turn(engine, conversation, "I took a bunch of pills an hour ago.", steering=INSTRUCTION)
    await turn(engine, conversation, "My sister is here now.")
    await turn(engine, conversation, "Thank you.")

    prompts = [as_pairs(p) for p in backend.prompts]
    steered = prompts[1][-1][1]
    assert steered.startswith("I took a bunch of pills") and INSTRUCTION in steered
    for before, after in pairwise(prompts):
        assert after[: len(before)] == before  # the cached prefix holds: only what followed is new
    # Later messages are not steered by it, and the stored history never holds the instruction.
    assert INSTRUCTION not in prompts[2][-1][1] and INSTRUCTION not in prompts[3][-1][1]
    assert all(INSTRUCTION not in m.content for m in conversation.messages)


async def test_an_edited_message_loses_the_old_instruction_and_a_new_conversation_starts_clean():
    backend = StreamingBackend("Okay.")
    engine = ChatEngine(backend, "You are a coach.")
    conversation = Conversation(id="c")
    await turn(engine, conversation, "I want it all to stop.", steering=INSTRUCTION)
    del conversation.messages[:]  # the person edited their message: it is another message now
    await turn(engine, conversation, "I want this week to stop, it's exhausting.")
    assert INSTRUCTION not in backend.prompts[-1][-1].content

    other = Conversation(id="d")
    engine.reset()
    await turn(engine, other, "I want it all to stop.")
    assert INSTRUCTION not in backend.prompts[-1][-1].content
