"""The net on the probe sets, written apart from it and never trained on, and the corpus kept apart.

The probes measure how the net carries over to messages nobody tuned it on:
`probe-6` (other voices), `probe-8-*` and `probe-9-*` (every category and language), and
`probe-10-*` (questions about means beside their benign twins, indirect intent and plans,
figures of speech), `probe-11-long` (long weekly updates to a coach, some with a crisis
buried inside), `probe-12-*` (look-alikes of the kinds a clinician tests with: idioms, news,
fiction, a past told calmly, other people's stories, hobbies, practical questions) and
`probe-12-relapse` (a past crisis, and now: back, or long over), `probe-13-*` (every category
and language, and the seven kinds of look-alike, by a clinician-tester's brief) and
`probe-14-plain-*` (crises typed the plain way people in danger type them, beside hard days
with no danger), `probe-15-*` (look-alikes of seven kinds), `probe-16-short-*` (short chat
turns) and `probe-17-emoji` (messages carried by emoji). The floors are what the shipped net
measured, less a margin: a change that makes the net carry over worse fails here. The sets once used for tuning and probing are
training data now (`train-8-*`). The held-out `test*.jsonl` files are never read by these tests.
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
CLINICIAN_PROBES = ("probe-12-en-es.jsonl", "probe-12-fr-pt.jsonl", "probe-12-de-it.jsonl")


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
    """Measured 0.931 recall (781/839) and 0.014 false alarms (10/690)."""
    summary = _summary(net, BALANCED_PROBES)
    assert summary.recall.value >= 0.90, summary.recall
    assert summary.false_alarms.value <= 0.04, summary.false_alarms
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < 0.78}
    assert not low


def test_means_probes_hold_their_floors(net):
    """The hardest set: measured 0.730 recall (394/540) and 0.128 false alarms (115/900: 0.183
    on twins that share a crisis message's words, 0.058 on figures of speech)."""
    summary = _summary(net, MEANS_PROBES)
    assert summary.recall.value >= 0.70, summary.recall
    assert summary.false_alarms.value <= 0.16, summary.false_alarms


def test_long_updates_rarely_open_the_panel(net):
    """What the chat and the pipeline read most: updates of 120 to 300 words. Measured 2 false
    alarms of 60 (the net before the `train-12`/`train-13` data flagged 8) and 18 of 20 buried
    crises found."""
    summary = _summary(net, ("probe-11-long.jsonl",))
    assert summary.false_alarms.value <= 0.10, summary.false_alarms
    assert summary.recall.value >= 0.75, summary.recall


def test_clinician_style_look_alikes_hold_their_floors(net):
    """Measured 0.950 recall (227/239) and 0.037 false alarms (23/630); the net before `train-15`
    and the wider `negation.past` flagged 54, the one before `train-18` and the recovery cues 36."""
    summary = _summary(net, CLINICIAN_PROBES)
    assert summary.recall.value >= 0.92, summary.recall
    assert summary.false_alarms.value <= 0.075, summary.false_alarms


def test_short_chat_turns_rarely_open_the_panel(net):
    """`probe-16-short-*`: the turns a chat is mostly made of ("ok i'll try that", "gotta go",
    "marre de vivre", "he's got a knife"), 1 to 10 words. Measured 0.901 recall (64/71) and
    0.023 false alarms (4/171); with the gate on turns of one or two words but before
    `train-22-short`, 0.887 (63/71) and 0.047 (8/171); before both, 0.076 (13/171)."""
    summary = _summary(net, ("probe-16-short-*.jsonl",))
    assert summary.recall.value >= 0.87, summary.recall
    assert summary.false_alarms.value <= 0.045, summary.false_alarms


def test_messages_carried_by_emoji_are_read(net):
    """`probe-17-emoji`: "🔪🩸", "⚰️ soon", "💊💊💊 bye" beside 💀 laughing, 🔪 cooking and 🔫 at
    paintball, in the six languages. Measured 0.875 recall (105/120) and 0.017 false alarms
    (2/120); before the lexicon's emoji shapes (`EMO` in `lexicon/en.yaml`), 0.767 (92/120) and
    the same false alarms. The shapes were written on `dev-23-emoji`; this probe's misses were
    printed once, by mistake, after their first draft (100/120), so it is no longer unseen: the
    later changes (a word after the emoji, a gun read as method) answer misses of the dev set."""
    summary = _summary(net, ("probe-17-emoji.jsonl",))
    assert summary.recall.value >= 0.85, summary.recall
    assert summary.false_alarms.value <= 0.03, summary.false_alarms


def test_a_relapse_is_read_and_a_recovery_mostly_is_not(net):
    """Measured 69 of 72 relapses found ("tried years ago, tonight I'll try again") and 6 false
    alarms of 72 recoveries; before the framed bar and `train-16`, 60 and 8."""
    summary = _summary(net, ("probe-12-relapse.jsonl",))
    assert summary.recall.value >= 0.85, summary.recall
    assert summary.false_alarms.value <= 0.15, summary.false_alarms


def test_fresh_probes_hold_their_floors(net):
    """`probe-13-*`: measured 0.912 recall (542/594) and 0.053 false alarms (32/600); the net
    three releases ago caught 519 with 40 false alarms. Its German and Portuguese half was never
    looked at message by message: 0.865 (173/200) and 0.040 (8/200)."""
    summary = _summary(net, ("probe-13-*.jsonl",))
    assert summary.recall.value >= 0.88, summary.recall
    assert summary.false_alarms.value <= 0.08, summary.false_alarms


def test_plainly_typed_crises_hold_their_floor(net):
    """`probe-14-plain-*`: the weakest measure of the net, 0.836 recall (646/773) and 0.056
    false alarms (20/359), against 625 and 26 three releases ago; German and Portuguese, never
    looked at message by message, 0.772 (200/259) and 0.076 (9/119)."""
    summary = _summary(net, ("probe-14-plain-*.jsonl",))
    assert summary.recall.value >= 0.80, summary.recall
    assert summary.false_alarms.value <= 0.09, summary.false_alarms


def test_look_alike_heavy_probe_holds_its_floor(net):
    """`probe-15-*`: 840 look-alikes of seven kinds beside 359 crises made to look like them,
    written as training data and kept as a probe when training on it moved the net only along
    its curve. Before topic mentions (`mention: true`) it measured 0.919 recall (330/359) and
    0.064 false alarms (54/840); then 0.922 (331/359) and 0.050 (42/840); with a time without
    self-harm read as a past, 0.046 (39/840). Its false alarms were read to find the topic-mention class, so that figure is optimistic; its crises were not."""
    summary = _summary(net, ("probe-15-*.jsonl",))
    assert summary.recall.value >= 0.89, summary.recall
    assert summary.false_alarms.value <= 0.07, summary.false_alarms


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
    [("probe-6.jsonl", 30, 250, 50), ("probe-8-*.jsonl", 20, 150, 39), ("probe-9-*.jsonl", 30, 200, 50)],
)
def test_a_probe_covers_every_category_and_language(net, pattern, per_category, benign, per_language):
    items = [i for path in sorted(CORPUS.glob(pattern)) for i in read_corpus(path)]
    categories = Counter(i.category for i in items)
    assert set(net.categories) <= set(categories) and all(categories[c] >= per_category for c in net.categories)
    assert categories["none"] >= benign
    languages = Counter(i.language for i in items if i.category != "none")
    assert set(languages) == set(net.config.languages) and min(languages.values()) >= per_language
