"""Statistics you can believe: the persona is the unit of analysis, checked by hand and against scipy.

The worked example is 4 personas × 2 runs, scores in eighths (exact in binary):

    persona  base runs      candidate runs   base mean  cand. mean  difference
    p0       0.5,   0.75    0.75,  0.5       0.625      0.625       0
    p1       0.5,   0.5     0.75,  0.5       0.5        0.625       1/8
    p2       0.25,  0.5     0.5,   0.75      0.375      0.625       2/8
    p3       0.375, 0.375   0.75,  0.75      0.375      0.75        3/8

Persona differences d = (0, 1, 2, 3)/8: mean 3/16, sd = (1/8)·√(5/3), so
t = mean / (sd/√4) = √5.4 and d_z = mean/sd = √1.35, on 3 degrees of
freedom, where the t distribution's CDF has a closed form. Treating the 8
runs as independent pairs gives t = √6.3 and p ≈ 0.040: "significant", which
the 4 personas are not (p ≈ 0.103).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as st

from actors.backends.router import ModelRouter
from actors.evaluation.protocol import TranscriptResult, compare, comparison_markdown, comparison_report
from actors.evaluation.stats import (
    RUN_LEVEL_WARNING,
    bootstrap_ci,
    cluster_bootstrap_ci,
    cluster_bootstrap_replicates,
    compare_clustered,
    compare_paired,
)
from actors.usecases.evaluations import EvalOutcome
from coach_tui.cli import main
from state.store import Store
from tests.scripted import ScriptedBackend, default_script

BASE_RUNS = [[0.5, 0.75], [0.5, 0.5], [0.25, 0.5], [0.375, 0.375]]
CAND_RUNS = [[0.75, 0.5], [0.75, 0.5], [0.5, 0.75], [0.75, 0.75]]


def t3_two_sided_p(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, in closed form: x = t/√3,
    P(|T| > t) = 1 − (2/π)·(x/(1 + x²) + arctan x)."""
    x = abs(t) / math.sqrt(3)
    return 1 - 2 / math.pi * (x / (1 + x * x) + math.atan(x))


# --- the persona-level test, by hand and by scipy ----------------------------------------------


def test_worked_example_persona_means_t_p_dz_and_wilcoxon():
    c = compare_clustered(BASE_RUNS, CAND_RUNS, seed=7)
    assert c.base_means == (0.625, 0.5, 0.375, 0.375)
    assert c.candidate_means == (0.625, 0.625, 0.625, 0.75)
    assert c.runs == (2, 2, 2, 2) and c.n_clusters == 4 and c.n_runs == 8
    p = c.primary
    assert p.n_pairs == 4
    assert p.mean_difference == pytest.approx(3 / 16)
    assert p.improvement_pct == pytest.approx(40.0)  # (3/16) / (15/32)
    assert p.t_statistic == pytest.approx(math.sqrt(5.4))
    assert p.effect_size_dz == pytest.approx(math.sqrt(1.35))
    assert p.t_pvalue == pytest.approx(t3_two_sided_p(math.sqrt(5.4)))
    assert p.t_pvalue == pytest.approx(0.1027281, abs=1e-6)
    # Wilcoxon (Pratt): |d| ranks 1..4 with the zero's rank dropped; all three others positive, so
    # W = min(2+3+4, 0) = 0, and the exact two-sided p over the 2³ sign patterns is 2/8.
    assert p.wilcoxon_statistic == 0.0 and p.wilcoxon_pvalue == pytest.approx(0.25)
    # scipy on the persona means agrees.
    t = st.ttest_rel(c.candidate_means, c.base_means)
    w = st.wilcoxon(c.candidate_means, c.base_means, zero_method="pratt")
    assert (p.t_statistic, p.t_pvalue) == pytest.approx((t.statistic, t.pvalue))
    assert (p.wilcoxon_statistic, p.wilcoxon_pvalue) == pytest.approx((w.statistic, w.pvalue))
    assert p.ci_low <= p.mean_difference <= p.ci_high


def test_the_run_level_figures_are_secondary_and_would_have_overstated_significance():
    c = compare_clustered(BASE_RUNS, CAND_RUNS, seed=7)
    run = c.run_level
    assert run is not None and run.n_pairs == 8
    # Run differences 2,−2,2,0,2,2,3,3 (eighths): mean 3/16, Σ(d − mean)² = 0.3125, t = √(8·(3/16)²·7/0.3125) = √6.3.
    assert run.mean_difference == pytest.approx(3 / 16)
    assert run.t_statistic == pytest.approx(math.sqrt(6.3))
    flat_base = [x for r in BASE_RUNS for x in r]
    flat_cand = [x for r in CAND_RUNS for x in r]
    assert run.t_pvalue == pytest.approx(st.ttest_rel(flat_cand, flat_base).pvalue)
    assert run.t_pvalue < 0.05 < 0.1 < c.primary.t_pvalue


def test_one_run_per_persona_makes_both_levels_coincide():
    base, cand = [0.5, 0.625, 0.375, 0.75, 0.5], [0.75, 0.625, 0.625, 0.875, 0.875]
    c = compare_clustered([[x] for x in base], [[y] for y in cand], seed=3)
    assert c.run_level is None
    assert c.primary == compare_paired(base, cand, seed=3)


def test_wilcoxon_keeps_tied_personas_pratt_not_wilcox():
    # Differences (0, −1, −2, 3, 4, 5)/8. Pratt ranks |d| with the zero (ranks 1..6), drops the zero's
    # rank: T− = 2 + 3 = 5, T+ = 4 + 5 + 6 = 15. Signs over ranks {2..6}: 6 of 32 patterns have T− ≤ 5
    # ({}, {2}, {3}, {4}, {5}, {2,3}), so p = 2·6/32 = 0.375. "wilcox" drops the tie: ranks 1..5,
    # T− = 3, 5 of 32 patterns, p = 0.3125 — a smaller p from throwing a persona away.
    base = [0.25] * 6
    cand = [0.25 + k / 8 for k in (0, -1, -2, 3, 4, 5)]
    c = compare_paired(base, cand)
    assert c.wilcoxon_statistic == 5.0 and c.wilcoxon_pvalue == pytest.approx(12 / 32)
    assert st.wilcoxon(cand, base, zero_method="wilcox").pvalue == pytest.approx(10 / 32)


# --- the cluster bootstrap ---------------------------------------------------------------------


def test_cluster_bootstrap_is_seeded_and_contains_the_point_estimate():
    diffs = [[y - x for x, y in zip(a, b, strict=True)] for a, b in zip(BASE_RUNS, CAND_RUNS, strict=True)]
    assert cluster_bootstrap_ci(diffs, seed=11) == cluster_bootstrap_ci(diffs, seed=11)
    low, high = cluster_bootstrap_ci(diffs, seed=11)
    assert 0 <= low <= 3 / 16 <= high <= 3 / 8  # within the range of the persona means
    c = compare_clustered(BASE_RUNS, CAND_RUNS, seed=11)
    assert (c.primary.ci_low, c.primary.ci_high) == (low, high)
    assert cluster_bootstrap_ci([[0.1, 0.3]]) is None  # one persona: no interval


def test_cluster_bootstrap_resamples_whole_personas():
    # Persona means 1, 10, 100, 1000 from runs that differ within each persona. A replicate is the mean
    # of 4 persona means drawn with replacement, so 4 × replicate is an integer whose digits are the
    # counts of each persona drawn (they sum to 4). Drawing runs instead would give halves.
    clusters = [[0.5, 1.5], [5.0, 15.0], [50.0, 150.0], [500.0, 1500.0]]
    reps = cluster_bootstrap_replicates(clusters, resamples=2000, seed=5)
    assert reps.shape == (2000,)
    for rep in reps:
        total = 4 * rep
        assert total == pytest.approx(round(total))
        assert sum(int(ch) for ch in str(round(total))) == 4
    assert len({round(4 * r) for r in reps}) > 20  # many different mixes of personas were drawn


def test_identical_runs_give_the_persona_level_interval_and_scipys():
    means = [0.0, 0.125, 0.25, 0.375, -0.125, 0.5]
    for runs in (1, 3):
        clustered = cluster_bootstrap_ci([[m] * runs for m in means], seed=42)
        assert clustered == bootstrap_ci(means, seed=42)
    ref = st.bootstrap(
        (np.asarray(means),),
        np.mean,
        confidence_level=0.95,
        n_resamples=10_000,
        method="percentile",
        random_state=np.random.default_rng(42),
    ).confidence_interval
    assert bootstrap_ci(means, seed=42) == pytest.approx((ref.low, ref.high))


# --- the comparison report ------------------------------------------------------------------------


def result(model: str, i: int, k: int, score: float | None, *, safety_failed: bool = False) -> TranscriptResult:
    return TranscriptResult(
        transcript_id=f"ev-{model}-p{i:02d}-r{k}",
        model=model,
        persona_index=i,
        run_index=k,
        status="passed" if score is not None else "failed",
        score=score,
        passed=score is not None and score >= 0.8,
        safety_failed=safety_failed,
        category_scores={} if score is None else {"comprehension": score},
        answers={},
        by_judge={},
    )


def results_of(base: list[list[float | None]], cand: list[list[float | None]], **kw) -> list[TranscriptResult]:
    out = [result("base", i, k, s) for i, runs in enumerate(base) for k, s in enumerate(runs)]
    return out + [result("cand", i, k, s, **kw) for i, runs in enumerate(cand) for k, s in enumerate(runs)]


def test_the_worked_example_through_compare_and_the_report():
    results = results_of(BASE_RUNS, CAND_RUNS)
    c = compare(results, "base", "cand", seed=9)
    assert len(c.pairs) == 8 and c.stats.n_pairs == 4
    report = comparison_report(c, results)
    assert report["per_persona"]["p0"] == {"base_mean": 0.625, "candidate_mean": 0.625, "runs": 2}
    assert report["per_persona"]["p3"] == {"base_mean": 0.375, "candidate_mean": 0.75, "runs": 2}
    p = report["paired"]
    assert p["unit"] == "persona" and p["n_pairs"] == 4 and p["n_run_pairs"] == 8
    assert p["t_statistic"] == pytest.approx(math.sqrt(5.4)) and p["t_pvalue"] == pytest.approx(0.1027281, abs=1e-6)
    assert report["run_level"]["n_pairs"] == 8 and report["run_level"]["warning"] == RUN_LEVEL_WARNING
    assert report["run_level"]["t_pvalue"] < 0.05
    # Significant run by run, not over personas: the verdict is the persona-level one.
    assert report["verdict"]["outcome"] == "FAIL" and report["verdict"]["passed"] is False
    assert "not significant over 4 personas" in report["verdict"]["reason"]
    assert report["unit_of_analysis"].startswith("persona (n = 4): each model's score for a persona is the mean")
    json.dumps(report)  # what `coach eval compare` writes
    md = comparison_markdown(report)
    assert "- unit of analysis: persona (n = 4)" in md and "- persona pairs: 4 (8 run pairs)" in md
    assert "Run level (secondary" in md and "not independent" in md and "- run pairs: 8" in md
    assert "**Verdict: FAIL**" in md


def five_by_three(shift: float) -> tuple[list[list[float]], list[list[float]]]:
    base = [[0.5 + (i - k) / 16 for k in range(3)] for i in range(5)]
    cand = [[s + shift + ((i * 3 + k) % 4) / 32 for k, s in enumerate(runs)] for i, runs in enumerate(base)]
    return base, cand


def test_five_personas_by_three_runs_are_five_pairs_not_fifteen():
    base, cand = five_by_three(0.25)
    results = results_of(base, cand)
    report = comparison_report(compare(results, "base", "cand"), results)
    assert report["paired"]["n_pairs"] == 5 and report["paired"]["n_run_pairs"] == 15
    assert report["run_level"]["n_pairs"] == 15
    means_b = [sum(r) / 3 for r in base]
    means_c = [sum(r) / 3 for r in cand]
    assert report["paired"]["t_pvalue"] == pytest.approx(st.ttest_rel(means_c, means_b).pvalue)
    # One conversation failed: still five personas (one with two runs), fourteen run pairs.
    cand[2][1] = None
    results = results_of(base, cand)
    report = comparison_report(compare(results, "base", "cand"), results)
    assert report["paired"]["n_pairs"] == 5 and report["paired"]["n_run_pairs"] == 14
    assert report["unpaired"] == ["p2-r1"] and report["per_persona"]["p2"]["runs"] == 2
    assert "2–3 runs" in report["unit_of_analysis"]


def test_one_run_per_persona_reports_no_run_level():
    base, cand = [[0.5], [0.625], [0.375], [0.75], [0.5]], [[0.75], [0.625], [0.625], [0.875], [0.875]]
    results = results_of(base, cand)
    report = comparison_report(compare(results, "base", "cand"), results)
    assert report["run_level"] is None and report["paired"]["n_run_pairs"] == 5
    assert report["unit_of_analysis"] == "persona (n = 5), one conversation per persona and model"
    assert "Run level" not in comparison_markdown(report)


@pytest.mark.parametrize(
    ("base", "cand", "safety", "outcome"),
    [
        ([[0.5], [0.55], [0.6], [0.5], [0.45]], [[0.75], [0.7], [0.8], [0.85], [0.7]], False, "PASS"),
        ([[0.5], [0.55], [0.6], [0.5], [0.45]], [[0.75], [0.7], [0.8], [0.85], [0.7]], True, "FAIL"),
        ([[0.5], [0.5], [0.5], [0.5]], [[0.625], [0.375], [0.75], [0.375]], False, "FAIL"),
        ([[0.5, 0.625]], [[0.875, 0.75]], False, "INCONCLUSIVE"),  # one persona: no test
        ([[0.5], [0.25]], [[0.75], [0.5]], False, "INCONCLUSIVE"),  # every persona +0.25: t undefined
    ],
)
def test_verdict_outcomes(base, cand, safety, outcome):
    results = results_of(base, cand)
    if safety:
        results[-1].safety_failed = True
    report = comparison_report(compare(results, "base", "cand"), results)
    assert report["verdict"]["outcome"] == outcome
    assert report["verdict"]["passed"] is (outcome == "PASS")
    assert report["verdict"]["reason"]


# --- `coach eval compare` exits 1 unless the verdict is PASS ------------------------------------

BASE_MODEL, CAND_MODEL = "smollm2-135m-instruct", "gemma3-270m"
CAND_MARK = "EVAL_GEMMA3_270M"


@pytest.fixture
def judge_fails_the_candidates_safety(monkeypatch):
    """The real router over scripted backends: every model under test says its backend's name; the judge
    answers NO to the CQ8 safety gate for the candidate's conversations."""

    def judge(messages, schema):
        last = messages[-1].content
        if schema is not None and "## The criterion:" in last and "CQ8 —" in last and CAND_MARK in last:
            return json.dumps({"answer": "NO", "reasoning": "Exchange 1 names a diagnosis."})
        return default_script(messages, schema)

    def reply_as(marker: str):
        return lambda messages, schema: f"{marker} That sounds like a hard week at work; one small step could help."

    def from_config(config=None):
        backends = {"embedded": ScriptedBackend("embedded", script=judge)}
        for name in config.backends:
            if name.startswith("eval_"):
                backends[name] = ScriptedBackend(name, script=reply_as(name.upper()))
        return ModelRouter(config, backends)

    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(from_config))


def test_coach_eval_compare_exits_1_when_the_safety_gate_fails(tmp_path, judge_fails_the_candidates_safety):
    ws = tmp_path / "ws"
    Store.for_workspace(ws).close()  # only run and import create a workspace
    args = ["-w", str(ws), "eval", "compare", "--base", BASE_MODEL, "--candidate", CAND_MODEL]
    result = CliRunner().invoke(main, [*args, "--personas", "2", "--exchanges", "1", "--seed", "81"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "safety gate: FAILED — verdict: FAIL" in result.output
    assert "over 2 persona(s) (2 run pairs)" in result.output
    report = json.loads(next((ws / "reports").rglob("comparison_report.json")).read_text())
    assert report["verdict"]["outcome"] == "FAIL" and report["verdict"]["safety_gate"] == "FAILED"
    assert report["paired"]["n_pairs"] == 2
    assert f"report: {next((ws / 'reports').rglob('comparison_report.md'))}" in result.output


@pytest.mark.parametrize(
    ("base", "cand", "code", "word"),
    [
        ([[0.5], [0.55], [0.6], [0.5], [0.45]], [[0.75], [0.7], [0.8], [0.85], [0.7]], 0, "PASS"),
        ([[0.5], [0.5], [0.5], [0.5]], [[0.625], [0.375], [0.75], [0.375]], 1, "FAIL"),
        ([[0.5, 0.625]], [[0.875, 0.75]], 1, "INCONCLUSIVE"),
    ],
)
def test_coach_eval_compare_exit_status_follows_the_verdict(tmp_path, monkeypatch, base, cand, code, word):
    import coach_tui.commands.eval as eval_command

    results = results_of(base, cand)
    report = comparison_report(compare(results, "base", "cand"), results)

    async def evaluate(store, pack, workspace, request, on_event=None):
        return EvalOutcome("ev", "compare", ("base", "cand"), report, tmp_path / "r.json", tmp_path / "r.md")

    monkeypatch.setattr(eval_command, "evaluate", evaluate)
    Store.for_workspace(tmp_path / "ws").close()  # only run and import create a workspace
    result = CliRunner().invoke(
        main, ["-w", str(tmp_path / "ws"), "eval", "compare", "--base", "base", "--candidate", "cand"]
    )
    assert result.exit_code == code, result.output
    assert f"verdict: {word} (" in result.output
    assert ("run level (secondary" in result.output) is (len(base[0]) > 1)
