"""The held-out test splits against the floors the net has reached, and against the issue's targets.

These tests read config/safety/corpus/test.jsonl (crisis messages and benign
look-alikes) and test-everyday.jsonl (ordinary coaching messages); nothing in
the net was written or trained from either. Two kinds of check:

* floors: what the shipped net measured on these splits, minus a small margin;
  a change that makes it worse fails here;
* the issue's targets (recall ≥ 0.95 overall, ≥ 0.90 per category and per
  language, ≤ 0.05 false alarms): those met are plain tests; the one not met
  yet (false alarms) is a strict xfail. The day one passes, its xfail
  fails and must be removed — it cannot pass silently.

Timing is the benchmark's business (benchmarks/bench_safety.py), not a test's.
"""

from __future__ import annotations

import pytest

from actors.safety import load_safety_net
from actors.safety.corpus import read_corpus
from actors.safety.loader import BUNDLED_SAFETY, train_paths
from actors.safety.metrics import Outcome, summarise

CORPUS = BUNDLED_SAFETY.parent / "corpus"

# Measured on the shipped net (see the README's safety section: recall 0.975, weakest categories
# intent and method 0.94, weakest languages French and Portuguese 0.95, look-alike false alarms
# 0.060, ordinary messages 0.017), less a margin of about one message (a category or a language
# holds 30 to 60).
RECALL_FLOOR = 0.95
CATEGORY_RECALL_FLOOR = 0.88
LANGUAGE_RECALL_FLOOR = 0.91
LOOKALIKE_FALSE_ALARM_CEILING = 0.07
EVERYDAY_FALSE_ALARM_CEILING = 0.035

NOT_YET = pytest.mark.xfail(strict=True, reason="the issue's target is not met yet (see the README's figures)")


def test_no_held_out_message_is_trained_on():
    """A held-out message in a training file would make these figures lie (the count only: the
    held-out texts are never printed)."""
    net = load_safety_net(None)
    trained = {net.normalised(i.text) for p in train_paths(BUNDLED_SAFETY, net.config) for i in read_corpus(p)}
    for name in ("test.jsonl", "test-everyday.jsonl"):
        shared = sum(net.normalised(i.text) in trained for i in read_corpus(CORPUS / name))
        assert shared == 0, f"{shared} message(s) of {name} are in the training files"


def _summary(name: str):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    net = load_safety_net(None)
    outcomes = []
    for item in read_corpus(path):
        verdict = net.check(item.text, item.history)
        outcomes.append(Outcome(item.text, item.category, item.language, verdict.flagged, verdict.categories, 0.0))
    return summarise(outcomes, net.categories), net.config.thresholds


@pytest.fixture(scope="module")
def report():
    return _summary("test.jsonl")


@pytest.fixture(scope="module")
def everyday():
    return _summary("test-everyday.jsonl")


def test_recall_floors(report):
    summary, _ = report
    assert summary.recall.value >= RECALL_FLOOR, f"recall {summary.recall.value:.3f}"
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < CATEGORY_RECALL_FLOOR}
    assert not low
    low = {c: round(r.value, 3) for c, r in summary.by_language.items() if r.value < LANGUAGE_RECALL_FLOOR}
    assert not low


def test_false_alarm_ceilings(report, everyday):
    lookalikes, _ = report
    ordinary, _ = everyday
    assert lookalikes.false_alarms.value <= LOOKALIKE_FALSE_ALARM_CEILING
    assert ordinary.false_alarms.value <= EVERYDAY_FALSE_ALARM_CEILING, "ordinary coaching messages open the panel"


def test_overall_recall_target(report):
    summary, targets = report
    assert summary.recall.value >= targets.recall, f"recall {summary.recall.value:.3f}"


def test_recall_per_category_target(report):
    summary, targets = report
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < targets.category_recall}
    assert not low


def test_recall_per_language_target(report):
    summary, targets = report
    low = {c: round(r.value, 3) for c, r in summary.by_language.items() if r.value < targets.language_recall}
    assert not low


@NOT_YET
def test_false_alarm_target(report):
    summary, targets = report
    assert summary.false_alarms.value <= targets.false_alarm_rate, f"false alarms {summary.false_alarms.value:.3f}"
