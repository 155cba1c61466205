"""The pipeline uses the chat's crisis net: the judge is told which exchanges it flagged."""

from __future__ import annotations

from actors.assessment.assessor import render_exchanges
from actors.generation.conversation import Turn
from actors.safety import load_safety_net
from actors.safety.transcripts import flag_exchanges


def test_the_judge_sees_which_exchanges_the_net_flagged(pack):
    turns = [
        Turn(
            user="Work has been a lot this month and I keep sleeping badly.", assistant="**Work:** That sounds heavy."
        ),
        Turn(user="honestly i took all my pills an hour ago", assistant="**Sleep:** Try a wind-down routine."),
        Turn(user="My sister called again about the move.", assistant="**Your sister:** What would help?"),
    ]
    texts = render_exchanges(pack, turns)
    assert texts[1].startswith("### Exchange 2 [crisis net: the user's message signals attempt")
    assert texts[0].startswith("### Exchange 1\n") and texts[2].startswith("### Exchange 3\n")
    # The mark is in the exchange's header; the words themselves are untouched.
    assert "honestly i took all my pills an hour ago" in texts[1]


def test_flags_read_each_message_with_the_ones_before_it(pack):
    net = load_safety_net(pack)
    messages = ["i just want it all to stop", "i have them all here now", "thanks for listening"]
    flags = flag_exchanges(net, messages)
    assert 2 in flags and 3 not in flags
    assert flag_exchanges(net, ["thanks for listening", "see you tomorrow"]) == {}


def test_a_reassessment_reads_no_message_twice(pack, monkeypatch):
    """Fixups rewrite replies, never the user's messages: judging a transcript again reuses the verdicts."""
    net = load_safety_net(pack)
    reads: list[str] = []
    check = net.check
    monkeypatch.setattr(net, "check", lambda text, history=(): reads.append(text) or check(text, history=history))
    messages = ["a slow week at work", "i have a plan for tonight and the rope is here", "my cat is fine"]
    first = flag_exchanges(net, messages)
    assert reads == messages
    assert flag_exchanges(net, messages) == first and reads == messages
    # The same message after different context is read again: context can change the verdict.
    flag_exchanges(net, ["a quiet sunday at home", "my cat is fine"])
    assert reads[-2:] == ["a quiet sunday at home", "my cat is fine"]
