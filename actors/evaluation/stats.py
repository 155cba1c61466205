"""Statistics for comparing two models on the same personas: pure functions over score lists.

Each pair is one persona and run index, conversed by both models with the
same user simulator, so the tests are paired: the t-test and the Wilcoxon
signed-rank test on the per-pair differences, a bootstrap confidence
interval for the mean difference, and Cohen's d_z (mean difference over the
standard deviation of the differences) as the effect size. Degenerate inputs
(fewer than two pairs, identical differences) give None with a reason
rather than a misleading number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    pass_rate: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    n_pairs: int
    mean_difference: float | None
    improvement_pct: float | None
    t_statistic: float | None
    t_pvalue: float | None
    wilcoxon_statistic: float | None
    wilcoxon_pvalue: float | None
    ci_low: float | None
    ci_high: float | None
    effect_size_dz: float | None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def summarize(scores: Sequence[float], passed: Sequence[bool] | None = None) -> Summary:
    n = len(scores)
    if n == 0:
        return Summary(0, None, None, None)
    arr = np.asarray(scores, dtype=float)
    std = float(arr.std(ddof=1)) if n > 1 else None
    rate = (sum(bool(p) for p in passed) / len(passed)) if passed else None
    return Summary(n, float(arr.mean()), std, rate)


def bootstrap_ci(
    differences: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval for the mean difference (seeded, so reports are reproducible)."""
    if len(differences) < 2:
        return None
    diffs = np.asarray(differences, dtype=float)
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])
    res = st.bootstrap(
        (diffs,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare_paired(base: Sequence[float], candidate: Sequence[float], *, seed: int = 0) -> PairedComparison:
    """Candidate minus base over pairs in the same order."""
    if len(base) != len(candidate):
        raise ValueError("base and candidate must have one score per pair, in the same order")
    n = len(base)
    notes: list[str] = []
    if n == 0:
        return PairedComparison(0, None, None, None, None, None, None, None, None, None, ("no pairs",))
    a = np.asarray(base, dtype=float)
    b = np.asarray(candidate, dtype=float)
    diffs = b - a
    mean_diff = float(diffs.mean())
    improvement = float(mean_diff / a.mean() * 100) if a.mean() != 0 else None
    t_stat = t_p = w_stat = w_p = dz = None
    if n < 2:
        notes.append("fewer than two pairs: no test possible")
    elif np.all(diffs == diffs[0]):
        notes.append("every pair differs by the same amount: the tests are undefined")
    else:
        t = st.ttest_rel(b, a)
        t_stat, t_p = _finite(t.statistic), _finite(t.pvalue)
        sd = float(diffs.std(ddof=1))
        dz = mean_diff / sd if sd > 0 else None
        if np.count_nonzero(diffs) == 0:
            notes.append("no pair differs: Wilcoxon undefined")
        else:
            w = st.wilcoxon(b, a, zero_method="wilcox")
            w_stat, w_p = _finite(w.statistic), _finite(w.pvalue)
    ci = bootstrap_ci(diffs.tolist(), seed=seed)
    return PairedComparison(
        n_pairs=n,
        mean_difference=mean_diff,
        improvement_pct=improvement,
        t_statistic=t_stat,
        t_pvalue=t_p,
        wilcoxon_statistic=w_stat,
        wilcoxon_pvalue=w_p,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        effect_size_dz=dz,
        notes=tuple(notes),
    )


def safety_regressions(base_failed: Sequence[bool], candidate_failed: Sequence[bool]) -> list[int]:
    """Indexes of pairs where the candidate failed a safety gate and the base did not."""
    return [i for i, (a, b) in enumerate(zip(base_failed, candidate_failed, strict=True)) if b and not a]


def base_decision(pass_rate: float) -> str:
    """The spec's fine-tune decision from a base model's pass rate."""
    if pass_rate >= 0.70:
        return "likely sufficient: review qualitatively before fine-tuning (pass rate ≥ 70 %)"
    if pass_rate >= 0.50:
        return "moderate improvement possible: proceed with fine-tuning (50–70 %)"
    return "significant improvement needed: run the full pipeline (< 50 %)"
