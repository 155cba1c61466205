"""The net on the probe sets, written apart from it and never trained on, and the corpus kept apart.

The probes measure how the net carries over to messages nobody tuned it on:
`probe-6` (other voices), `probe-8-*` and `probe-9-*` (every category and language),
`probe-10-*` (questions about means beside their benign twins, indirect intent and plans,
figures of speech), `probe-11-long` and `probe-20-long-*` (long weekly updates to a coach, some
with a crisis buried inside; `probe-20-long` written after passages of a long message were
first read alone), `probe-16-short-*` (short chat turns), `probe-17-emoji` (messages carried by
emoji), `probe-18-*` (every category in every language beside look-alikes of every kind,
written for the release that trained on the probes before it) and `probe-21-mid-*` (check-ins of
two to five sentences, some with one sentence of danger among them). The floors are what the shipped net
measured, less a margin: a change that makes the net carry over worse fails here. The sets
once used for tuning and probing are training data now (`train-8-*`, `train-24-probe-*`).
The held-out `test*.jsonl` files are never read by these tests.
"""

from __future__ import annotations

from collections import Counter

import pytest

from actors.safety import load_safety_net
from actors.safety.corpus import read_corpus
from actors.safety.loader import BUNDLED_SAFETY, train_paths
from actors.safety.metrics import Outcome, summarise

CORPUS = BUNDLED_SAFETY.parent / "corpus"
BALANCED_PROBES = ("probe-6.jsonl", "probe-8-*.jsonl", "probe-9-*.jsonl")
MEANS_PROBES = ("probe-10-*.jsonl",)


@pytest.fixture(scope="module")
def net():
    return load_safety_net(None)


def _summary(net, patterns: tuple[str, ...]):
    outcomes = []
    for pattern in patterns:
        paths = sorted(CORPUS.glob(pattern))
        assert paths, pattern
        for path in paths:
            for item in read_corpus(path):
                verdict = net.check(item.text, item.history)
                outcomes.append(
                    Outcome(item.text, item.category, item.language, verdict.flagged, verdict.categories, 0.0)
                )
    return summarise(outcomes, net.categories)


def test_balanced_probes_hold_their_floors(net):
    """Measured 0.944 recall (792/839) and 0.014 false alarms (10/690)."""
    summary = _summary(net, BALANCED_PROBES)
    assert summary.recall.value >= 0.90, summary.recall
    assert summary.false_alarms.value <= 0.04, summary.false_alarms
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < 0.78}
    assert not low


def test_means_probes_hold_their_floors(net):
    """The hardest set: measured 0.754 recall (407/540) and 0.138 false alarms (124/900: twins
    that share a crisis message's words, figures of speech; 404 and 123 before two consecutive
    sentences of a short message were read alone). Trained on, it taught the method
    head that "which", "what" and "if" ask about means, so it stays a probe."""
    summary = _summary(net, MEANS_PROBES)
    assert summary.recall.value >= 0.70, summary.recall
    assert summary.false_alarms.value <= 0.16, summary.false_alarms


def test_long_updates_rarely_open_the_panel(net):
    """What the chat and the pipeline read most: updates of 120 to 300 words. Measured 2 false
    alarms of 60 (the net before the `train-12`/`train-13` data flagged 8) and 20 of 20 buried
    crises found (19 before passages were read alone, 18 before `train-23`, `-24` and `-25`)."""
    summary = _summary(net, ("probe-11-long.jsonl",))
    assert summary.false_alarms.value <= 0.10, summary.false_alarms
    assert summary.recall.value >= 0.75, summary.recall


def test_fresh_long_updates_hold_their_floors(net):
    """`probe-20-long-*`: 96 long updates of many lives and 24 with a crisis buried inside,
    written after `segment_threshold` was chosen on `dev-26-long`. Measured 24 of 24 buried
    crises (23 without passages read alone) and 6 false alarms of 96, all from the lexicon."""
    summary = _summary(net, ("probe-20-long-*.jsonl",))
    assert summary.recall.value >= 0.90, summary.recall
    assert summary.false_alarms.value <= 0.09, summary.false_alarms


def test_fresh_check_ins_hold_their_floors(net):
    """`probe-21-mid-*`: 210 check-ins of two to five sentences (150 to 380 characters) and 90
    with one sentence of danger among ordinary ones, in six languages, written after questions
    that propose the act and sentence pairs were measured on `dev-27-mid`. Measured 87 of 90
    crises and 15 false alarms of 210 (84 and 13 without sentence pairs read alone)."""
    summary = _summary(net, ("probe-21-mid-*.jsonl",))
    assert summary.recall.value >= 0.93, summary.recall
    assert summary.false_alarms.value <= 0.09, summary.false_alarms


def test_short_chat_turns_rarely_open_the_panel(net):
    """`probe-16-short-*`: the turns a chat is mostly made of ("ok i'll try that", "gotta go",
    "marre de vivre", "he's got a knife"), 1 to 10 words. Measured 0.887 recall (63/71) and
    0.041 false alarms (7/171; 64 and 4 before `train-23`, `-24` and `-25`); with the gate on turns of
    one or two words but before `train-22-short`, 0.887 (63/71) and 0.047 (8/171); before
    both, 0.076 (13/171)."""
    summary = _summary(net, ("probe-16-short-*.jsonl",))
    assert summary.recall.value >= 0.87, summary.recall
    assert summary.false_alarms.value <= 0.045, summary.false_alarms


def test_messages_carried_by_emoji_are_read(net):
    """`probe-17-emoji`: "🔪🩸", "⚰️ soon", "💊💊💊 bye" beside 💀 laughing, 🔪 cooking and 🔫 at
    paintball, in the six languages. Measured 0.892 recall (107/120) and 0.017 false alarms
    (2/120); before the lexicon's emoji shapes (`EMO` in `lexicon/en.yaml`), 0.767 (92/120) and
    the same false alarms. The shapes were written on `dev-23-emoji`; this probe's misses were
    printed once, by mistake, after their first draft (100/120), so it is no longer unseen: the
    later changes (a word after the emoji, a gun read as method) answer misses of the dev set."""
    summary = _summary(net, ("probe-17-emoji.jsonl",))
    assert summary.recall.value >= 0.85, summary.recall
    assert summary.false_alarms.value <= 0.03, summary.false_alarms


def test_fresh_probe_holds_its_floors(net):
    """`probe-18-*`: 445 crises of every category in every language beside 450 look-alikes of
    every kind, written for the release that moved the probes before it into training, and
    read only as these counts. Measured 0.966 recall (430/445; weakest German 0.905, intent
    0.911) and 0.062 false alarms (28/450); the net before that release, 0.933 (415/445) and
    0.087 (39/450)."""
    summary = _summary(net, ("probe-18-*.jsonl",))
    assert summary.recall.value >= 0.93, summary.recall
    assert summary.false_alarms.value <= 0.08, summary.false_alarms
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < 0.85}
    assert not low
    low = {c: round(r.value, 3) for c, r in summary.by_language.items() if r.value < 0.86}
    assert not low


def test_probes_hold_no_training_message(net):
    """A message both in training and in a probe would make the probe's figures lie."""
    paths = train_paths(BUNDLED_SAFETY, net.config)
    assert not any(p.name.startswith(("dev", "probe", "test")) for p in paths)
    trained = {net.normalised(i.text) for p in paths for i in read_corpus(p)}
    probes = sorted(CORPUS.glob("probe*.jsonl"))
    assert probes
    for path in probes:
        shared = [i.text for i in read_corpus(path) if net.normalised(i.text) in trained]
        assert not shared, (path.name, shared[:3])


@pytest.mark.parametrize(
    ("pattern", "per_category", "benign", "per_language"),
    [
        ("probe-6.jsonl", 30, 250, 50),
        ("probe-8-*.jsonl", 20, 150, 39),
        ("probe-9-*.jsonl", 30, 200, 50),
        ("probe-18-*.jsonl", 43, 450, 73),
        ("probe-21-mid-*.jsonl", 8, 210, 15),
    ],
)
def test_a_probe_covers_every_category_and_language(net, pattern, per_category, benign, per_language):
    items = [i for path in sorted(CORPUS.glob(pattern)) for i in read_corpus(path)]
    categories = Counter(i.category for i in items)
    assert set(net.categories) <= set(categories) and all(categories[c] >= per_category for c in net.categories)
    assert categories["none"] >= benign
    languages = Counter(i.language for i in items if i.category != "none")
    assert set(languages) == set(net.config.languages) and min(languages.values()) >= per_language
