"""The held-out test split against the issue's targets (recall, per category, per language, false alarms).

This test reads config/safety/corpus/test.jsonl to measure; nothing in the net
was written or trained from it. Timing is the benchmark's business
(benchmarks/bench_safety.py), not a test's.
"""

from __future__ import annotations

import pytest

from actors.safety import load_safety_net
from actors.safety.corpus import read_corpus
from actors.safety.loader import BUNDLED_SAFETY
from actors.safety.metrics import Outcome, summarise

TEST_SPLIT = BUNDLED_SAFETY.parent / "corpus" / "test.jsonl"


@pytest.fixture(scope="module")
def report():
    if not TEST_SPLIT.is_file():
        pytest.skip("the held-out split is not in this checkout")
    net = load_safety_net(None)
    outcomes = []
    for item in read_corpus(TEST_SPLIT):
        verdict = net.check(item.text, item.history)
        outcomes.append(Outcome(item.text, item.category, item.language, verdict.flagged, verdict.categories, 0.0))
    return summarise(outcomes, net.categories), net.config.thresholds


def test_overall_recall(report):
    summary, targets = report
    assert summary.recall.value >= targets.recall, f"recall {summary.recall.value:.3f}"


def test_recall_per_category(report):
    summary, targets = report
    low = {c: round(r.value, 3) for c, r in summary.by_category.items() if r.value < targets.category_recall}
    assert not low


def test_recall_per_language(report):
    summary, targets = report
    low = {c: round(r.value, 3) for c, r in summary.by_language.items() if r.value < targets.language_recall}
    assert not low


def test_false_alarms(report):
    summary, targets = report
    assert summary.false_alarms.value <= targets.false_alarm_rate, f"false alarms {summary.false_alarms.value:.3f}"
