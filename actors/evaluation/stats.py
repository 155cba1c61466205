"""Statistics for comparing two models on the same personas: pure functions over score lists.

Both models converse with the same simulated people, so the tests are
paired. The unit of analysis is the persona, not the conversation: with
several runs per persona, the runs of one persona share its profile, flaws
and simulator and are not independent, so treating each run as a pair would
count one person several times and overstate significance. `compare_clustered`
therefore averages each persona's runs per model and runs the paired t-test,
the Wilcoxon signed-rank test and Cohen's d_z (mean difference over the
standard deviation of the differences) on those persona means, with a
cluster bootstrap (whole personas resampled with all their runs) for the
confidence interval of the mean difference; the run-level figures come
beside them only as a labelled secondary. With one run per persona the two
coincide. Degenerate inputs (fewer than two pairs, identical differences)
give None with a reason rather than a misleading number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

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


def cluster_bootstrap_replicates(
    clusters: Sequence[Sequence[float]], *, resamples: int = 10_000, seed: int = 0
) -> np.ndarray:
    """The bootstrap distribution of the mean of cluster means, resampling whole clusters.

    A cluster is one persona's values (one per run). Each replicate draws as
    many clusters as there are, with replacement, each with all of its runs,
    and averages their means, so the spread is the spread between personas,
    never between runs of one persona. The draws are the ones
    `scipy.stats.bootstrap` makes from the same seed, so with one value per
    cluster the interval is scipy's percentile interval.
    """
    if any(len(c) == 0 for c in clusters):
        raise ValueError("every cluster needs at least one value")
    means = np.asarray([np.mean(np.asarray(c, dtype=float)) for c in clusters], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(means), (resamples, len(means)))
    return means[idx].mean(axis=-1)


def cluster_bootstrap_ci(
    clusters: Sequence[Sequence[float]], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile interval of the mean of cluster means from a cluster bootstrap (seeded: reports are reproducible)."""
    if len(clusters) < 2:
        return None
    means = [float(np.mean(np.asarray(c, dtype=float))) for c in clusters]
    if all(m == means[0] for m in means):
        return means[0], means[0]
    replicates = cluster_bootstrap_replicates(clusters, resamples=resamples, seed=seed)
    alpha = (1 - confidence) / 2
    return float(np.percentile(replicates, alpha * 100)), float(np.percentile(replicates, (1 - alpha) * 100))


def bootstrap_ci(
    differences: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval for the mean difference: the cluster bootstrap with one value per cluster."""
    return cluster_bootstrap_ci([[d] for d in differences], confidence=confidence, resamples=resamples, seed=seed)


def compare_paired(base: Sequence[float], candidate: Sequence[float], *, seed: int = 0) -> PairedComparison:
    """Candidate minus base over pairs in the same order, each pair taken as independent.

    The Wilcoxon signed-rank test uses Pratt's treatment of zero differences.
    Rubric scores are fractions of a handful of yes/no criteria, so the two
    models often tie on a persona. The default "wilcox" method drops those
    ties and ranks only the pairs that differ, as if the sample were that
    small and every one of them had moved: it reports more significance than
    the data hold. "pratt" keeps the ties in the ranking (their ranks count
    towards n and push the nonzero ranks up, then are dropped from the sums),
    the more conservative choice. With ties or zeros and up to 13 pairs,
    scipy computes the p-value by exhaustive sign permutation, so it is exact.
    """
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
            w = st.wilcoxon(b, a, zero_method="pratt")
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


RUN_LEVEL_WARNING = (
    "runs of one persona are not independent (same profile, flaws and simulator): these run-level "
    "figures count each run as a pair and overstate significance; the verdict uses the persona-level test"
)


@dataclass(frozen=True)
class ClusteredComparison:
    """A paired comparison over clusters (personas), each scored by the mean of its runs."""

    primary: PairedComparison
    """Over the persona means: t-test, Wilcoxon, d_z, and the cluster bootstrap's interval."""
    runs: tuple[int, ...]
    """Run pairs behind each persona, in order."""
    base_means: tuple[float, ...]
    candidate_means: tuple[float, ...]
    run_level: PairedComparison | None
    """Every run pair as if independent (secondary, see RUN_LEVEL_WARNING); None with one run per persona."""

    @property
    def n_clusters(self) -> int:
        return len(self.runs)

    @property
    def n_runs(self) -> int:
        return sum(self.runs)


def compare_clustered(
    base: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], *, seed: int = 0
) -> ClusteredComparison:
    """Candidate minus base with the persona as the unit of analysis.

    `base[i]` and `candidate[i]` are persona i's scores per run, paired by
    position. Each persona's score per model is the mean of its runs; the
    paired tests and d_z are over those means, and the interval is a cluster
    bootstrap that resamples personas with all their runs. With one run per
    persona this is `compare_paired` over the runs, and `run_level` is None.
    """
    if len(base) != len(candidate) or any(len(a) != len(b) for a, b in zip(base, candidate, strict=False)):
        raise ValueError("base and candidate must have the same personas with the same runs, in the same order")
    if any(len(a) == 0 for a in base):
        raise ValueError("every persona needs at least one run pair")
    base_means = [float(np.mean(np.asarray(a, dtype=float))) for a in base]
    cand_means = [float(np.mean(np.asarray(b, dtype=float))) for b in candidate]
    primary = compare_paired(base_means, cand_means, seed=seed)
    if len(base) >= 2:
        diffs = [[y - x for x, y in zip(a, b, strict=True)] for a, b in zip(base, candidate, strict=True)]
        ci = cluster_bootstrap_ci(diffs, seed=seed)
        primary = replace(primary, ci_low=ci[0], ci_high=ci[1])
    runs = tuple(len(a) for a in base)
    run_level = None
    if any(r > 1 for r in runs):
        run_level = compare_paired([x for a in base for x in a], [y for b in candidate for y in b], seed=seed)
    return ClusteredComparison(primary, runs, tuple(base_means), tuple(cand_means), run_level)


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
