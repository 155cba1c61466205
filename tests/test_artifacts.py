"""Artifact detection: each kind found with its span, and ordinary coaching text left alone."""

from __future__ import annotations

import pytest

from actors.curation.artifacts import (
    DEFAULT_NAMES,
    KINDS,
    STRUCTURAL_KINDS,
    ArtifactSettings,
    Finding,
    detect_artifacts,
    non_english_reason,
    transcript_artifacts,
    trim_cut_off_tail,
)
from actors.dataset.transcript_format import ExchangeData

# A reply in the spec's segmented style: labelled topic sections, ends on a question.
GOOD = (
    "**Work stress:** Snapping at your team after three late nights makes sense — your reserves are low, "
    "not your character. What would it look like to leave at six twice this week?\n\n"
    "**Your sister's move:** You're carrying guilt about not helping with the boxes. Could you offer one "
    "concrete thing, like Saturday morning, instead of the whole weekend?\n\n"
    "**Sleep:** Waking at 3 a.m. with your mind racing is common when the day never had a pause. A short "
    "wind-down — phone in another room, ten minutes of reading — is worth one try. How does that sound?"
)
LONG_USER = " ".join(["Work has been rough and my sister keeps calling about the move and I sleep badly."] * 12)


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def only(reply: str, **kw) -> list[str]:
    return sorted(set(kinds(detect_artifacts(reply, **kw))))


def assert_spans_valid(reply: str, findings: list[Finding]) -> None:
    for f in findings:
        assert f.kind in KINDS
        assert 0 <= f.start < f.end <= len(reply) or (f.kind == "empty" and f.start == 0)
        assert reply[f.start : f.end] == f.text
        assert f.detail


# --- clean text -------------------------------------------------------------------------------


def test_good_segmented_reply_has_no_findings():
    assert detect_artifacts(GOOD, user=LONG_USER) == []


@pytest.mark.parametrize(
    "reply",
    [
        "That's a real step forward. Take care of yourself this week 🌱",
        "That's a real step forward. See you next time 👋🏽",
        "You put it well when you said “I’m done pretending everything is fine.”",
        'You said it yourself: "I need a break."',
        "Try the walk first (even ten minutes counts).",
        "Try the walk first (even ten minutes counts)",
        "What would it feel like to just... say yes?",
        "That's not nothing. That might actually be everything…",
        "Rest when you can. This kind of growth takes energy!",
        "It's *your* call, and *both* can be true. What matters most right now?",
        "**The promotion:** Your manager noticed your work. That's recognition you earned.",
        "Said plainly: again, the aim is to maintain the gains you made. Certain days will be harder.",
        "The AI tools at your job sound stressful. What part of the change worries you most?",
    ],
)
def test_ordinary_coaching_text_is_clean(reply):
    assert detect_artifacts(reply) == [], reply


def test_user_topic_words_do_not_trigger_meta_rules():
    user = (
        "I spent the week debugging the flight simulation at work and my manager keeps asking whether "
        "ChatGPT could write the tests. Honestly I am exhausted and I barely see my partner."
    )
    reply = (
        "**The simulation work:** A week inside the simulation bugs sounds draining, especially with "
        "your manager hovering. **ChatGPT and the tests:** It's reasonable to feel uneasy when a tool is "
        "framed as replacing your judgement. What do you want your manager to understand?"
    )
    assert detect_artifacts(reply, user=user) == []


def test_name_allowed_only_when_the_user_raised_it():
    reply = "It sounds like ChatGPT helped you draft the email. What did sending it feel like?"
    assert only(reply) == ["character_break"]
    assert only(reply, user="I used ChatGPT to write the email to my landlord.") == []


def test_role_play_as_a_coaching_technique_is_fine():
    assert detect_artifacts("We could role-play the talk with your boss next time. Would that help?") == []
    assert detect_artifacts("Let's try a quick role play of the conversation. Ready?") == []


def test_scenario_in_coaching_sense_is_fine():
    reply = "In that scenario, you could say no to the extra shift. What is the worst realistic outcome?"
    assert detect_artifacts(reply) == []


def test_italic_emphasis_is_not_a_stage_direction():
    reply = "Be *gently* curious about it, and notice *when* it shows up. What do you see?"
    assert detect_artifacts(reply) == []


def test_bullet_list_with_asterisks_is_balanced():
    reply = "A few options:\n* a short walk\n* ten minutes of reading\n\nWhich one feels doable?"
    assert detect_artifacts(reply) == []


def test_horizontal_rule_is_not_open_bold():
    reply = "**Work:** That sounds heavy.\n\n***\n\n**Sleep:** Rest counts too. What helps?"
    assert detect_artifacts(reply) == []


def test_short_reply_to_a_short_update_is_fine():
    assert (
        detect_artifacts("That's great news. What made it possible this time?", user="Quick update: I slept 7 hours!")
        == []
    )


# --- character breaks and meta-commentary ----------------------------------------------------------


@pytest.mark.parametrize(
    "reply, fragment",
    [
        ("I'm an AI, so I can't know exactly how that felt. What stood out?", "I'm an AI"),
        (
            "As an AI language model, I don't have a family. But what you describe sounds hard.",
            "As an AI language model",
        ),
        ("I am just a language model, but that sounds painful. What happened next?", "I am just a language model"),
        ("As a large language model I can offer ideas. Does a walk help?", "As a large language model"),
        ("I am Claude, and I'm here for you. What's on your mind?", "Claude"),
        ("This assistant was made by Anthropic. What's on your mind?", "Anthropic"),
        ("Unlike OpenAI's models, I try to listen. What's on your mind?", "OpenAI"),
        ("My training data suggests walks help. Want to try one?", "My training data"),
        ("I don't actually have feelings, but I understand. What now?", "I don't actually have feelings"),
    ],
)
def test_character_breaks(reply, fragment):
    findings = [f for f in detect_artifacts(reply) if f.kind == "character_break"]
    assert findings, reply
    assert any(fragment.lower() in f.text.lower() or f.text.lower() in fragment.lower() for f in findings)
    assert_spans_valid(reply, findings)


@pytest.mark.parametrize(
    "reply, fragment",
    [
        ("[Note: the coach stays warm here.] That sounds hard. What helped?", "[Note: the coach stays warm here.]"),
        ("That sounds hard. (Note: keeping this brief.) What helped?", "(Note: keeping this brief.)"),
        ("In this roleplay I will keep things short. What helped?", "this roleplay"),
        ("Since this simulation is about work, let's start there. What helped?", "this simulation"),
        ("This is a simulated session, but your feelings matter. What helped?", "simulated session"),
        ("(as the coach) That sounds hard. What helped?", "(as the coach)"),
        ("*leans forward* That sounds hard. What helped?", "*leans forward*"),
        ("*nods slowly* That sounds hard. What helped?", "*nods slowly*"),
        ("(pauses) That sounds hard. What helped?", "(pauses)"),
        ("Coach: That sounds hard. What helped?", "Coach:"),
        ("**Coach:** That sounds hard. What helped?", "**Coach:**"),
        ("That sounds hard.\n\nUser: thanks", "User:"),
        ("The user seems overwhelmed, so I'll keep it short. What helped?", "The user seems"),
        ("Here's my response to the user: That sounds hard. What helped?", "Here's my response"),
        ("I hope this response helps. What helped?", "I hope this response"),
        ("Maybe text [sister's name] tonight. What helped?", "[sister's name]"),
        ("Maybe text [sister] tonight. What helped?", "[sister]"),
        ("Staying in character as your coach: that sounds hard. What helped?", "in character"),
        ("Given this persona, stress is expected. What helped?", "this persona"),
    ],
)
def test_meta_commentary(reply, fragment):
    findings = [f for f in detect_artifacts(reply) if f.kind == "meta_commentary"]
    assert findings, reply
    assert any(f.text == fragment or fragment in f.text for f in findings), [f.text for f in findings]
    assert_spans_valid(reply, findings)


def test_extra_generator_names():
    reply = "SmolLM2 here. What's on your mind today?"
    assert "character_break" in only(reply)
    assert only("Bobbin here. What's on your mind today?", names=[*DEFAULT_NAMES, "Bobbin"]) == ["character_break"]
    assert only("Claude here. What's on your mind today?", names=()) == []


def test_name_inside_a_word_is_not_a_mention():
    assert detect_artifacts("Claudette at work sounds difficult. What did she say?") == []
    assert detect_artifacts("The Gemmaline project sounds intense. What's the deadline?") == []


def test_therapist_label_allowed_when_user_talks_about_therapists():
    reply = "**Therapist:** Looking for one is a real step. What kind of support do you want?"
    assert "meta_commentary" in only(reply)
    assert only(reply, user="I finally looked up a therapist near me.") == []


# --- truncation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, detail",
    [
        ("That sounds hard. You might try going for a walk and", "mid-sentence on 'and'"),
        ("That sounds hard. The first thing to notice is the", "mid-sentence on 'the'"),
        ("That sounds hard. Here are three options:", "ends on ':'"),
        ("That sounds hard. You could try walking,", "ends on ','"),
        ("That sounds hard. You could try a self-", "mid-word"),
        ("That sounds hard. Maybe a short walk would clear your", "mid-sentence on 'your'"),
        ("That sounds hard. Maybe a short walk would help", "without sentence punctuation"),
        ("**Work:** That sounds hard.\n\n**Sleep**", "without sentence punctuation"),
    ],
)
def test_truncated_endings(reply, detail):
    findings = [f for f in detect_artifacts(reply) if f.kind == "truncated"]
    assert len(findings) == 1, findings
    assert detail in findings[0].detail
    assert findings[0].end == len(reply.rstrip())
    assert findings[0].text.startswith(reply.rstrip()[findings[0].start :][:5])
    assert "That sounds hard." not in findings[0].text  # the span is the last fragment, not the whole reply


def test_open_bold_is_truncated_even_with_a_period():
    reply = "**Work stress: It has been a lot this week. What helped?"
    findings = [f for f in detect_artifacts(reply) if f.kind == "truncated"]
    assert [f.detail for f in findings] == ["'**' opened and never closed"]
    assert findings[0].start == 0


def test_unclosed_code_fence_and_quote():
    assert "truncated" in only("Try this script:\n```\nbreathe in\nbreathe out.")
    assert "truncated" in only("You wrote “I can’t keep doing this. What then?")
    assert only("You wrote “I can’t keep doing this.” What then?") == []


# --- too short, empty ------------------------------------------------------------------------------


def test_empty_reply_is_only_empty():
    for reply in ("", "   \n "):
        findings = detect_artifacts(reply, user=LONG_USER)
        assert kinds(findings) == ["empty"]


def test_too_short_for_multi_topic_message():
    reply = "That sounds like a lot. Which part matters most today?"
    findings = detect_artifacts(reply, user=LONG_USER)
    assert kinds(findings) == ["too_short"]
    assert "multi-topic" in findings[0].detail and findings[0].text == reply
    # The same reply to a short message is fine.
    assert detect_artifacts(reply, user="Small win today: I slept well.") == []


def test_too_short_absolute_floor_and_settings():
    assert only("Okay, noted.") == ["too_short"]
    assert only("Okay, noted.", settings=ArtifactSettings(min_words=2)) == []


def test_multi_topic_minimum_scales_with_user_length():
    reply = " ".join(["This is one clear sentence about your week."] * 7)  # 56 words
    assert "too_short" not in only(reply, user=LONG_USER)  # 180-word user: needs 50
    very_long_user = LONG_USER * 4  # 720 words: needs 72
    assert "too_short" in only(reply, user=very_long_user)


# --- non-English ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "Entiendo que esta semana ha sido muy difícil para ti. Vamos a hablar sobre el trabajo, tu hermana y "
        "el sueño que no te deja descansar por las noches. ¿Qué te ayudaría más ahora?",
        "Je comprends que cette semaine a été très difficile pour toi. Parlons du travail, de ta soeur et de "
        "ton sommeil qui ne te laisse pas reposer la nuit. Qu'est-ce qui t'aiderait le plus?",
        "Я понимаю, что эта неделя была очень тяжёлой. Давайте поговорим о работе и о сне.",
        "这周对你来说真的很难。我们先谈谈工作，然后再谈谈你的睡眠，好吗？",
    ],
)
def test_non_english_replies(reply):
    findings = detect_artifacts(reply)
    assert "non_english" in kinds(findings)


def test_english_reply_switching_language_mid_way_flags_the_paragraph():
    english = GOOD
    spanish = (
        "Entiendo que esta semana ha sido muy difícil para ti. Vamos a hablar sobre el trabajo, tu hermana "
        "y el sueño que no te deja descansar. ¿Qué te ayudaría más ahora?"
    )
    reply = english + "\n\n" + spanish
    findings = [f for f in detect_artifacts(reply) if f.kind == "non_english"]
    assert len(findings) == 1 and findings[0].text == spanish


def test_short_foreign_phrase_is_fine():
    reply = "Your grandmother's saying, “poco a poco se va lejos,” fits this week well. What is the next small step?"
    assert detect_artifacts(reply) == []
    assert non_english_reason("Poco a poco se va lejos.") is None  # too short to judge


# --- repeated boilerplate -----------------------------------------------------------------------------


def test_repeated_sentence_from_earlier_reply():
    stock = "Remember that you are doing the best you can with what you have right now."
    earlier = [f"**Work:** Long hours again. {stock} What helps?", "**Sleep:** Rest matters. What helps?"]
    reply = f"**Family:** The call was hard. {stock} What would you like to try?"
    findings = detect_artifacts(reply, previous_assistant=earlier)
    assert kinds(findings) == ["repeated_boilerplate"]
    assert findings[0].text == stock and "earlier reply 1" in findings[0].detail


def test_repeated_opening_line():
    earlier = ["That sounds really hard. Work has been a lot. What helps?"]
    reply = "That sounds really hard. Your sister's call came at a bad time. What would help?"
    findings = detect_artifacts(reply, previous_assistant=earlier)
    assert kinds(findings) == ["repeated_boilerplate"] and findings[0].text == "That sounds really hard."


def test_short_common_sentences_and_labels_are_not_boilerplate():
    earlier = ["**Sleep:** You did it. Rest matters. How does that sound?"]
    reply = "**Sleep:** You did it again. Rest matters. How does that sound?"
    assert detect_artifacts(reply, previous_assistant=earlier) == []


def test_boilerplate_compares_normalised_text():
    stock = "Remember that you are doing the best you can with what you have right now."
    earlier = [f"Work first. {stock}"]
    reply = "Family first. **Remember** that you are doing the best you can with what you have   right now."
    assert kinds(detect_artifacts(reply, previous_assistant=earlier)) == ["repeated_boilerplate"]


# --- transcripts -------------------------------------------------------------------------------------


def _exchanges(replies: list[str]) -> list[ExchangeData]:
    return [
        ExchangeData(number=i, user="Work, my sister, and sleep again this week.", assistant=r)
        for i, r in enumerate(replies, 1)
    ]


def test_transcript_artifacts_keys_only_flagged_exchanges():
    replies = [GOOD, GOOD.replace("How does that sound?", "How does that sound"), "I'm an AI. What now?"]
    result = transcript_artifacts(_exchanges(replies))
    assert set(result) == {2, 3}
    assert "truncated" in kinds(result[2])
    assert "character_break" in kinds(result[3])


def test_transcript_repetition_is_detected_across_turns():
    stock = "Remember that you are doing the best you can with what you have right now."
    replies = [f"Work first. {stock} What helps?", f"Sleep next. {stock} What helps?"]
    result = transcript_artifacts(_exchanges(replies))
    assert list(result) == [2] and kinds(result[2]) == ["repeated_boilerplate"]
    assert "repeated_boilerplate" not in STRUCTURAL_KINDS  # a style problem to rewrite, never a reason to cut


def test_findings_are_sorted_and_spans_valid_on_a_messy_reply():
    reply = "[Note: draft] I'm an AI. *nods* Est-ce que ça va? **Sleep: try a walk and"
    findings = detect_artifacts(reply)
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    assert {"meta_commentary", "character_break", "truncated"} <= set(kinds(findings))
    assert_spans_valid(reply, findings)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        ArtifactSettings().min_words = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "reply",
    [
        "You can *look at* the list again tomorrow. What stands out?",
        "Take a *pause* before you answer her. What would you want to say?",
        "Breathe in (pause) and breathe out slowly. How does that feel?",
        "Just *smile* and leave when you're ready. Does that feel possible?",
    ],
)
def test_instructions_in_italics_are_not_stage_directions(reply):
    assert detect_artifacts(reply) == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "That sounds hard. What would help most this week? I think that the",
            "That sounds hard. What would help most this week?",
        ),
        ("**Sleep:** Waking early is draining.\n\n**Work:** You could try", "**Sleep:** Waking early is draining."),
        ("That sounds hard", None),  # nothing complete would remain
        ("Fine. **Sleep: a pause could", None),  # an unclosed bold is not just a cut-off tail
        ("All good.", None),  # nothing to trim
    ],
)
def test_trim_cut_off_tail(reply, expected):
    assert trim_cut_off_tail(reply) == expected
