"""Statistics against known values: scipy on fixed data, hand-computed numbers, degenerate inputs."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t as student_t

from actors.evaluation.stats import base_decision, bootstrap_ci, compare_paired, safety_regressions, summarize

BASE = [0.70, 0.65, 0.80, 0.75, 0.60, 0.72, 0.68, 0.74]
CAND = [0.78, 0.70, 0.85, 0.74, 0.71, 0.80, 0.75, 0.79]


def test_paired_t_and_wilcoxon_match_hand_and_reference_values():
    c = compare_paired(BASE, CAND)
    diffs = [b - a for a, b in zip(BASE, CAND, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    assert c.mean_difference == pytest.approx(mean)
    assert c.t_statistic == pytest.approx(mean / (sd / math.sqrt(n)))
    assert c.effect_size_dz == pytest.approx(mean / sd)
    assert c.improvement_pct == pytest.approx(mean / (sum(BASE) / n) * 100)
    # Two-sided p from the t distribution with n-1 degrees of freedom.
    assert c.t_pvalue == pytest.approx(2 * student_t.sf(abs(c.t_statistic), n - 1))
    # Wilcoxon by hand: one negative difference, of the smallest magnitude -> W = 1; the exact
    # two-sided p for n = 8 is 2 * P(W <= 1) = 2 * 2/256.
    assert c.wilcoxon_statistic == pytest.approx(1.0)
    assert c.wilcoxon_pvalue == pytest.approx(4 / 256)
    assert c.ci_low < mean < c.ci_high


def test_textbook_t_test():
    # Differences 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5)/sqrt(5)) = 4.2426
    c = compare_paired([0, 0, 0, 0, 0], [1, 2, 3, 4, 5])
    assert c.t_statistic == pytest.approx(4.242640687)
    assert c.t_pvalue == pytest.approx(0.013236, abs=1e-5)


def test_bootstrap_is_seeded_and_sensible():
    diffs = [0.1, 0.05, 0.12, -0.02, 0.08, 0.03]
    assert bootstrap_ci(diffs, seed=1) == bootstrap_ci(diffs, seed=1)
    low, high = bootstrap_ci(diffs, seed=1)
    assert min(diffs) <= low < sum(diffs) / len(diffs) < high <= max(diffs)
    assert bootstrap_ci([0.1]) is None
    assert bootstrap_ci([0.2, 0.2, 0.2]) == (0.2, 0.2)


def test_degenerate_inputs_say_why():
    same = compare_paired([0.5, 0.6], [0.6, 0.7])
    assert same.t_pvalue is None and "same amount" in same.notes[0]
    one = compare_paired([0.5], [0.7])
    assert one.t_pvalue is None and one.mean_difference == pytest.approx(0.2)
    empty = compare_paired([], [])
    assert empty.n_pairs == 0 and empty.mean_difference is None
    with pytest.raises(ValueError):
        compare_paired([0.1], [0.1, 0.2])


def test_summary_and_safety():
    s = summarize([0.8, 0.6, 1.0], [True, False, True])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.2) and s.pass_rate == pytest.approx(2 / 3)
    assert safety_regressions([False, True, False, False], [True, True, False, True]) == [0, 3]


@pytest.mark.parametrize(
    ("rate", "word"),
    [(0.8, "sufficient"), (0.7, "sufficient"), (0.6, "proceed"), (0.5, "proceed"), (0.49, "full pipeline")],
)
def test_base_decision(rate, word):
    assert word in base_decision(rate)
