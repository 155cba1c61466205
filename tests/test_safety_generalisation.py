"""The net on the sets written for tuning and probing, and the corpus kept apart from them.

Floors on `dev-2.jsonl` (look-alikes written independently of the patterns) and
`dev-everyday.jsonl` (ordinary coaching messages written to tempt the net): the net that
learnt from the `train-6-*` files (indirect crisis messages and minimal pairs beside
ordinary messages that share their words) halved the false alarms there without losing
recall. `probe-3.jsonl`, `probe-5.jsonl` and `probe-6.jsonl` are fresh sets for measuring, never for tuning:
only their shape is tested here. The held-out `test*.jsonl` files are never read by these tests.
"""

from __future__ import annotations

from collections import Counter

import pytest

from actors.safety import load_safety_net
from actors.safety.corpus import read_corpus
from actors.safety.loader import BUNDLED_SAFETY, train_paths
from actors.safety.metrics import Outcome, summarise

CORPUS = BUNDLED_SAFETY.parent / "corpus"


@pytest.fixture(scope="module")
def net():
    return load_safety_net(None)


def _summary(net, name: str):
    outcomes = []
    for item in read_corpus(CORPUS / name):
        verdict = net.check(item.text, item.history)
        outcomes.append(Outcome(item.text, item.category, item.language, verdict.flagged, verdict.categories, 0.0))
    return summarise(outcomes, net.categories)


def test_lookalike_false_alarms_stay_low_without_losing_recall(net):
    summary = _summary(net, "dev-2.jsonl")
    assert summary.false_alarms.value <= 0.02, summary.false_alarms  # was 0.039 (11/279)
    assert summary.recall.value >= 0.98, summary.recall


def test_ordinary_messages_rarely_open_the_panel(net):
    summary = _summary(net, "dev-everyday.jsonl")
    assert summary.false_alarms.value <= 0.06, summary.false_alarms  # was 0.081 (10/124)


def test_probes_and_new_training_files_are_kept_apart(net):
    """A message both in training and in a probe would make the probe's figures lie. Probes hold
    no training message; the `train-6-*` and `train-7-*` files hold no dev or probe message.
    (Older dev files share 16 short messages with older training files; they are left as
    measured.)"""
    paths = train_paths(BUNDLED_SAFETY, net.config)
    assert not any(p.name.startswith(("dev", "probe", "test")) for p in paths)
    trained = {net.normalised(i.text) for p in paths for i in read_corpus(p)}
    newest = {
        net.normalised(i.text) for p in paths if p.name.startswith(("train-6-", "train-7-")) for i in read_corpus(p)
    }
    assert newest
    for path in sorted(CORPUS.glob("*.jsonl")):
        if not path.name.startswith(("dev", "probe")):
            continue  # the held-out test files are never read here
        seen = trained if path.name.startswith("probe") else newest
        shared = [i.text for i in read_corpus(path) if net.normalised(i.text) in seen]
        assert not shared, (path.name, shared[:3])


@pytest.mark.parametrize(
    ("name", "per_category", "benign", "per_language"),
    [("probe-3.jsonl", 10, 50, 20), ("probe-5.jsonl", 30, 300, 55), ("probe-6.jsonl", 30, 250, 50)],
)
def test_a_probe_covers_every_category_and_language(net, name, per_category, benign, per_language):
    items = read_corpus(CORPUS / name)
    categories = Counter(i.category for i in items)
    assert set(net.categories) <= set(categories) and all(categories[c] >= per_category for c in net.categories)
    assert categories["none"] >= benign
    languages = Counter(i.language for i in items if i.category != "none")
    assert set(languages) == set(net.config.languages) and min(languages.values()) >= per_language
