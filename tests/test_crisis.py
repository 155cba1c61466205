"""Crisis detection: a pure function, checked phrase by phrase.

Positives include indirect phrasings (the ones a keyword list misses);
benign cases include the figures of speech that share their words.
"""

from __future__ import annotations

import pytest

from actors.crisis import detect_crisis, has_crisis_signal, normalise

SUICIDE = [
    "I want to kill myself",
    "I've been thinking about ending my life",
    "Everyone would be better off without me",
    "I want to go to sleep and not wake up",
    "I've been giving my things away",
    "I don't want to be here anymore",
    "I feel suicidal most nights",
    "There's no point in living anymore",
    "I wish I was dead",
    "I have been saving up my pills",
    "I wrote a goodbye letter to my family last night",
    "I've been researching how to overdose",
    "I can't see a way out and I just want it all to end",
    "I don't deserve to live",
    "My family would be better off if I was gone",
    "I thought about jumping off the bridge on my way home",
    "I won't be around much longer, so it doesn't matter",
    "Sometimes I wish I could just disappear forever",
    "I'm tired of being alive",
    "i wanna die",
    "Nobody would even miss me",
    "I have a plan to end it",
    "I'm thinking about taking all my pills at once",
    "I hope I don't wake up tomorrow",
    "I\u2019m not saying I\u2019m suicidal, but I think about it a lot",  # curly quotes, hedged
    "I don't want to kill myself but the thoughts won't stop",
    "I've been putting my affairs in order",
    "honestly i dont want to live anymore",
]
SELF_HARM = [
    "I've started cutting myself again",
    "Sometimes I hurt myself on purpose when it gets too much",
    "I keep having urges to hurt myself",
    "I self-harm when I feel numb",
    "I burn my arms to cope",
]
HARM_OTHERS = [
    "I'm going to hurt him when he gets home",
    "I keep thinking about killing my boss",
    "I'm scared I might hurt my baby",
    "I'll bring a knife to work and make them pay",
    "I want to strangle my flatmate, I mean it",
]
POSITIVE = SUICIDE + SELF_HARM + HARM_OTHERS

BENIGN = [
    "this deadline is killing me",
    "I could kill for a coffee right now",
    "my phone died in the middle of the call",
    "I'm dying to see that new film",
    "I absolutely killed it at my presentation today",
    "my houseplants are dying again",
    "I'm dead tired after the night shift",
    "that joke killed me, I nearly died laughing",
    "I need to kill some time before the train",
    "I want to go to sleep early tonight and wake up refreshed",
    "I gave my old clothes to charity",
    "I'm not suicidal, just really stressed about money",
    "I would never kill myself, I just feel flat",
    "I cut my finger chopping onions",
    "my mum is going to kill me when she sees the car",
    "I hurt my back at the gym",
    "we had suicide prevention training at work today",
    "the battery is dead and my car won't start",
    "I'm so bored I could die",
    "I'd love to disappear to a beach for a week",
    "My grandmother passed away last year and I still miss her",
    "kill the process and restart the server",
    "I shot a great photo at the lake",
    "I'm drowning in emails",
    "I'm ready to end my shift and go home",
    "I want to end this meeting early",
    "I don't want to die without seeing Japan",
    "I'm going to die of embarrassment",
    "no one would notice if I left the party early",
    "I hurt myself when I fell off my bike last week",
    "I'm sick of life in this town, I need a change",
    "my sister is going to kill it at her audition",
    "I'm giving away my old bike",
]


@pytest.mark.parametrize("text", POSITIVE)
def test_crisis_phrasings_are_detected(text):
    assert has_crisis_signal(text), detect_crisis(text)


@pytest.mark.parametrize("text", BENIGN)
def test_figures_of_speech_and_negations_are_not(text):
    assert not has_crisis_signal(text), detect_crisis(text)


@pytest.mark.parametrize(
    ("texts", "category"),
    [(SUICIDE, "suicide"), (SELF_HARM, "self_harm"), (HARM_OTHERS, "harm_to_others")],
)
def test_each_signal_names_its_category(texts, category):
    for text in texts:
        assert category in {s.category for s in detect_crisis(text)}, text


def test_signal_reports_the_words_that_matched():
    [signal] = detect_crisis("Honestly? Everyone would be better off without me.")
    assert signal.phrase == "would be better off without me" or "better off without me" in signal.phrase
    assert signal.pattern == "better off without me"


def test_negation_only_cancels_in_its_own_clause():
    assert not has_crisis_signal("I'm not suicidal")
    assert has_crisis_signal("I'm not sure why, but I feel suicidal")
    assert has_crisis_signal("It's not that bad. I want to die.")


def test_normalise_is_case_quote_and_space_insensitive():
    assert normalise("I\u2019M   Fine\n") == "i'm fine"
    assert detect_crisis("I WANT TO KILL MYSELF") == detect_crisis("i want to kill myself")


def test_case_counts_meet_the_brief():
    assert len(POSITIVE) >= 20 and len(BENIGN) >= 20
