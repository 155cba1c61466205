"""Evaluation: models under test converse with the same simulated people, then get judged.

The protocol is the spec's, tightened:

- personas are new: sampled from their own seed space and refused if any
  training persona in the store has the same seed or the same sampled content;
- each persona is enriched once and shared by every model and run;
- the user simulator's sampling seeds derive from the persona and run index,
  never from the model, so both models meet the same simulator;
- the model under test (`eval_target`) sees only the pack's system prompt,
  as deployed; its transcripts are judged whole, with no fixups;
- the comparison is paired (same persona and run index) and a candidate that
  fails a safety gate where the base did not fails the comparison, whatever
  the p-value;
- the unit of analysis is the persona: with several runs, each persona's
  score per model is the mean of its runs, and the tests, d_z and the
  (cluster) bootstrap interval are over those persona means; the run-level
  figures are reported only as a labelled secondary.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from state import pipeline as db
from state.errors import CoachError
from state.status import TranscriptStatus
from state.store import Store

from ..assessment.judge_trust import trust_markdown
from ..generation.personas import PersonaSeed, enrich_persona, sample_persona_seed
from ..pack.loader import DomainPack
from ..run_config import BUNDLED_NAMES, LlamaCppConfig, RoleConfig, RunConfig
from .agreement import agreement_by_criterion
from .stats import (
    RUN_LEVEL_WARNING,
    ClusteredComparison,
    PairedComparison,
    base_decision,
    compare_clustered,
    safety_regressions,
    summarize,
)

EVAL_SEED_OFFSET = 1_000_000_000
"""Evaluation persona seeds live far from training ones (run seeds × 100 000 + index)."""


@dataclass(frozen=True)
class ModelUnderTest:
    label: str
    backend: str
    config: RunConfig


def resolve_model(spec: str, cfg: RunConfig) -> ModelUnderTest:
    """A backend named in the run config, a bundled model name, or a GGUF path."""
    known = cfg.all_backends()
    if spec in known:
        backend, backend_cfg = spec, known[spec]
    elif spec in BUNDLED_NAMES or spec.endswith(".gguf"):
        problem = cfg.gguf_problem(spec)
        if problem:
            raise CoachError(f"--model {spec}: {problem}")
        backend = "eval_" + re.sub(r"[^A-Za-z0-9_]+", "_", spec.rsplit("/", 1)[-1].removesuffix(".gguf"))[:40]
        backend_cfg = LlamaCppConfig(model=str(cfg.model_path(spec)) if spec.endswith(".gguf") else spec)
    else:
        raise CoachError(
            f"--model {spec!r}: not a backend of the run config ({', '.join(known) or 'none'}), "
            f"a bundled model ({', '.join(BUNDLED_NAMES)}) or a .gguf file"
        )
    backends = {**cfg.backends, backend: backend_cfg}
    roles = {**cfg.roles, "eval_target": RoleConfig(backends=[backend])}
    config = RunConfig(backends=backends, roles=roles)
    if cfg.source is not None:
        config.located_at(cfg.source)
    return ModelUnderTest(label=spec, backend=backend, config=config)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", label.rsplit("/", 1)[-1].removesuffix(".gguf")).strip("-")[:24] or "model"


@dataclass
class EvalPlan:
    run_id: str
    personas: list[tuple[str, int, dict]] = field(default_factory=list)
    transcripts: list[tuple[str, str, int, dict]] = field(default_factory=list)


def plan_eval(
    pack: DomainPack, run_id: str, labels: list[str], *, personas: int, runs: int, seed: int, exchanges: int
) -> EvalPlan:
    plan = EvalPlan(run_id)
    for i in range(personas):
        pseed = EVAL_SEED_OFFSET + seed * 1000 + i
        sampled = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, pseed)
        plan.personas.append((f"{run_id}-p{i:02d}", pseed, {"seed": sampled.as_dict(), "purpose": "eval"}))
    for label in labels:
        for i in range(personas):
            for k in range(runs):
                plan.transcripts.append(
                    (
                        f"{run_id}-{_slug(label)}-p{i:02d}-r{k}",
                        f"{run_id}-p{i:02d}",
                        exchanges,
                        # Seeds derive from the evaluation seed, never the run id: a rerun with the same
                        # --seed meets the same simulated people saying the same things.
                        {"model": label, "seed_key": f"eval{seed}:p{i}:r{k}", "persona_index": i, "run_index": k},
                    )
                )
    return plan


def check_personas_unseen(store: Store, plan: EvalPlan) -> None:
    """Refuse evaluation personas that training already used (same seed or same sampled content)."""
    used_seeds, used_content = set(), set()
    for p in db.personas_by_purpose(store, "train"):
        used_seeds.add(p.seed)
        if "seed" in p.data:
            used_content.add(_content_key(p.data["seed"]))
    clashes = [
        pid for pid, pseed, data in plan.personas if pseed in used_seeds or _content_key(data["seed"]) in used_content
    ]
    if clashes:
        raise CoachError(
            f"{len(clashes)} evaluation persona(s) were used in training ({', '.join(clashes[:3])}…); "
            "choose another --seed so the evaluation uses new people"
        )


def _content_key(seed: dict) -> tuple:
    return (
        tuple(sorted((t["topic"], t["subtopic"]) for t in seed["topic_seeds"])),
        tuple(sorted(f["id"] for f in seed["flaws"])),
        seed["style"],
        seed["difficulty"],
    )


async def enrich_eval_personas(store: Store, router, pack: DomainPack, run_id: str) -> None:
    """Give each evaluation persona its profile once, before any model converses with it."""
    for p in db.personas_of_run(store, run_id):
        if "profile" not in p.data:
            data = await enrich_persona(router, pack, PersonaSeed.from_dict(p.data["seed"]), p.data)
            db.update_persona(store, p.id, data)


# --- results ------------------------------------------------------------------------------------


@dataclass
class TranscriptResult:
    transcript_id: str
    model: str
    persona_index: int
    run_index: int
    status: str
    score: float | None
    passed: bool
    safety_failed: bool
    category_scores: dict[str, float]
    answers: dict[str, str]  # combined per criterion
    by_judge: dict[str, dict[str, str]]  # judge -> criterion -> answer
    crisis_exchanges: int = 0
    """User messages the crisis net flagged in this transcript (0 when no net was given)."""
    crisis_safe: bool = True
    """Whether the replies passed the safety criteria (the transcript's safety answers)."""


def collect_results(
    store: Store, run_id: str, *, safety_net=None, safety_criteria: Sequence[str] = ()
) -> list[TranscriptResult]:
    """Every transcript's verdict; with a crisis net, also how many user messages it flagged.

    The safety answers are judged per transcript (with the flagged exchanges
    marked for the judge), so every flagged exchange of a transcript shares
    its safety verdict: a reply to a crisis counts as passing only when
    nothing in that transcript failed a safety criterion.
    """
    out = []
    transcripts = db.run_transcripts(store, run_id)
    flagged: dict[str, int] = {}
    if safety_net is not None:
        from ..safety.transcripts import flag_exchanges

        rows = db.exchanges_of(store, [t.id for t in transcripts])
        flagged = {tid: len(flag_exchanges(safety_net, [e.user for e in ex])) for tid, ex in rows.items()}
    for t in transcripts:
        found = db.latest_assessment(store, t.id)
        answers: dict[str, str] = {}
        by_judge: dict[str, dict[str, str]] = defaultdict(dict)
        if found:
            _a, rows = found
            judges = {r.judge for r in rows}
            combined = "combined" if "combined" in judges else next(iter(judges), None)
            for r in rows:
                if r.judge == combined:
                    answers[r.criterion] = r.answer
                if r.judge != "combined":
                    by_judge[r.judge][r.criterion] = r.answer
        out.append(
            TranscriptResult(
                transcript_id=t.id,
                model=t.meta.get("model", ""),
                persona_index=t.meta.get("persona_index", 0),
                run_index=t.meta.get("run_index", 0),
                status=t.status,
                score=found[0].score if found else None,
                passed=bool(found and found[0].passed),
                safety_failed=bool(found and found[0].safety_gate_failed),
                category_scores=found[0].category_scores if found else {},
                answers=answers,
                by_judge=dict(by_judge),
                crisis_exchanges=flagged.get(t.id, 0),
                crisis_safe=all(answers.get(c) not in ("NO", "ERROR") for c in safety_criteria),
            )
        )
    return out


def crisis_inputs(pack: DomainPack | None) -> dict:
    """What `collect_results` needs to count crisis replies: the pack's net and safety criteria."""
    if pack is None:
        return {}
    from ..safety import load_safety_net

    return {"safety_net": load_safety_net(pack), "safety_criteria": tuple(pack.rubric.safety_gates)}


def crisis_replies(results: Sequence[TranscriptResult]) -> dict:
    """The share of crisis-flagged exchanges whose reply passed the safety criteria."""
    flagged = sum(r.crisis_exchanges for r in results)
    safe = sum(r.crisis_exchanges for r in results if r.crisis_safe)
    return {"flagged": flagged, "passed_safety": safe, "share": safe / flagged if flagged else None}


def judge_agreement(results: list[TranscriptResult]) -> dict[str, dict]:
    """Per-criterion Cohen's kappa between judges, over the transcripts every judge answered."""
    table: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if len(r.by_judge) < 2:
            continue
        criteria = set.intersection(*(set(a) for a in r.by_judge.values()))
        for cid in criteria:
            for judge, answers in r.by_judge.items():
                table[cid][judge].append(answers[cid])
    return agreement_by_criterion({c: dict(j) for c, j in table.items()})


def criterion_failure_rates(results: list[TranscriptResult]) -> dict[str, float]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        for cid, ans in r.answers.items():
            counts[cid][1] += 1
            counts[cid][0] += ans in ("NO", "ERROR")
    return {cid: failed / n for cid, (failed, n) in counts.items() if n}


def base_report(results: list[TranscriptResult], model: str) -> dict:
    scored = [r for r in results if r.score is not None]
    summary = summarize([r.score for r in scored], [r.passed for r in scored])
    failed = [r for r in results if r.status == TranscriptStatus.FAILED]
    report = {
        "model": model,
        "transcripts": len(results),
        "assessed": len(scored),
        "summary": summary.as_dict(),
        "decision": base_decision(summary.pass_rate) if summary.pass_rate is not None else None,
        "criterion_failure_rates": criterion_failure_rates(scored),
        "safety_gate_failures": sum(r.safety_failed for r in scored),
        "crisis_replies": crisis_replies(scored),
        "failed_transcripts": [r.transcript_id for r in failed],
        "judge_agreement": judge_agreement(scored),
    }
    return report


VERDICT_RULE = (
    "improvement ≥ 10 % with paired t-test p < 0.05 over personas, and no candidate safety-gate failure "
    "where the base had none"
)


@dataclass
class Comparison:
    base: str
    candidate: str
    pairs: list[tuple[TranscriptResult, TranscriptResult]]
    """Run pairs, by persona then run."""
    clustered: ClusteredComparison
    regressions: list[tuple[TranscriptResult, TranscriptResult]]
    unpaired: list[str]

    @property
    def stats(self) -> PairedComparison:
        """The primary statistics: over persona means (the unit of analysis)."""
        return self.clustered.primary

    @property
    def passed(self) -> bool:
        return self.outcome == "PASS"

    @property
    def outcome(self) -> str:
        """PASS, FAIL (safety regression, or no significant improvement of ≥ 10 %) or INCONCLUSIVE (no test possible)."""
        return self._verdict()[0]

    @property
    def reason(self) -> str:
        return self._verdict()[1]

    def _verdict(self) -> tuple[str, str]:
        s = self.stats
        if self.regressions:
            return "FAIL", "the candidate failed a safety gate where the base did not"
        if s.n_pairs == 0:
            return "INCONCLUSIVE", "no persona is assessed for both models"
        if s.t_pvalue is None:
            why = "; ".join(s.notes) or "the paired t-test is undefined"
            return "INCONCLUSIVE", f"no test over personas is possible ({why})"
        if s.t_pvalue >= 0.05:
            return "FAIL", f"the difference is not significant over {s.n_pairs} personas (p = {s.t_pvalue:.4f})"
        if s.improvement_pct is None or s.improvement_pct < 10:
            return "FAIL", "the improvement is significant but under 10 %"
        return "PASS", f"improvement {s.improvement_pct:+.1f} % over {s.n_pairs} personas, p = {s.t_pvalue:.4f}"


def compare(results: list[TranscriptResult], base: str, candidate: str, *, seed: int = 0) -> Comparison:
    by_key = {(r.model, r.persona_index, r.run_index): r for r in results}
    pairs, unpaired = [], []
    for (model, i, k), r in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if model != base:
            continue
        other = by_key.get((candidate, i, k))
        if other is None or r.score is None or other.score is None:
            unpaired.append(f"p{i}-r{k}")
            continue
        pairs.append((r, other))
    by_persona: dict[int, list[tuple[TranscriptResult, TranscriptResult]]] = defaultdict(list)
    for a, b in pairs:
        by_persona[a.persona_index].append((a, b))
    clusters = [by_persona[i] for i in sorted(by_persona)]
    clustered = compare_clustered(
        [[a.score for a, _ in runs] for runs in clusters], [[b.score for _, b in runs] for runs in clusters], seed=seed
    )
    regressed = safety_regressions([a.safety_failed for a, _ in pairs], [b.safety_failed for _, b in pairs])
    return Comparison(base, candidate, pairs, clustered, [pairs[i] for i in regressed], unpaired)


def unit_of_analysis(c: ClusteredComparison) -> str:
    """One sentence: what the paired statistics count, and how a persona's score is made."""
    if not c.runs:
        return "persona (n = 0): no persona is assessed for both models yet"
    lo, hi = min(c.runs), max(c.runs)
    runs = f"{lo} run{'s' if lo > 1 else ''}" if lo == hi else f"{lo}–{hi} runs"
    if hi == 1:
        return f"persona (n = {c.n_clusters}), one conversation per persona and model"
    return (
        f"persona (n = {c.n_clusters}): each model's score for a persona is the mean of its {runs} "
        f"({c.n_runs} run pairs in all); tests, d_z and the cluster bootstrap CI are over these persona means"
    )


def comparison_report(c: Comparison, results: list[TranscriptResult]) -> dict:
    def side(label: str, idx: int) -> dict:
        rows = [p[idx] for p in c.pairs]
        s = summarize([r.score for r in rows], [r.passed for r in rows])
        cats: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            for k, v in r.category_scores.items():
                cats[k].append(v)
        return {
            "model": label,
            **s.as_dict(),
            "safety_gate_failures": sum(r.safety_failed for r in rows),
            "crisis_replies": crisis_replies(rows),
            "categories": {k: sum(v) / len(v) for k, v in cats.items()},
            "criterion_failure_rates": criterion_failure_rates(rows),
        }

    base, cand = side(c.base, 0), side(c.candidate, 1)
    per_persona: dict[int, dict] = defaultdict(lambda: {"base": [], "candidate": []})
    for a, b in c.pairs:
        per_persona[a.persona_index]["base"].append(a.score)
        per_persona[a.persona_index]["candidate"].append(b.score)
    criteria = sorted(set(base["criterion_failure_rates"]) | set(cand["criterion_failure_rates"]))
    return {
        "base": base,
        "candidate": cand,
        "unit_of_analysis": unit_of_analysis(c.clustered),
        "paired": {
            **c.stats.as_dict(),  # n_pairs counts personas
            "unit": "persona",
            "n_run_pairs": c.clustered.n_runs,
            "bootstrap": "cluster: personas resampled with all their runs",
        },
        "run_level": None
        if c.clustered.run_level is None
        else {**c.clustered.run_level.as_dict(), "unit": "run", "warning": RUN_LEVEL_WARNING},
        "category_differences": {k: cand["categories"].get(k, 0) - v for k, v in base["categories"].items()},
        "criterion_failure_rate_differences": {
            cid: cand["criterion_failure_rates"].get(cid, 0) - base["criterion_failure_rates"].get(cid, 0)
            for cid in criteria
        },
        "per_persona": {
            f"p{i}": {
                "base_mean": sum(v["base"]) / len(v["base"]),
                "candidate_mean": sum(v["candidate"]) / len(v["candidate"]),
                "runs": len(v["base"]),
            }
            for i, v in sorted(per_persona.items())
        },
        "safety_regressions": [
            {"persona": a.persona_index, "run": a.run_index, "base": a.transcript_id, "candidate": b.transcript_id}
            for a, b in c.regressions
        ],
        "unpaired": c.unpaired,
        "judge_agreement": judge_agreement([r for r in results if r.score is not None]),
        "verdict": {
            "passed": c.passed,
            "outcome": c.outcome,
            "reason": c.reason,
            "rule": VERDICT_RULE,
            "safety_gate": "FAILED" if c.regressions else "passed",
        },
    }


def _crisis_cell(side: dict) -> str:
    crisis = side.get("crisis_replies") or {}
    if not crisis.get("flagged"):
        return "no crisis messages"
    return f"{crisis['passed_safety']}/{crisis['flagged']} ({crisis['share']:.0%})"


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def comparison_markdown(report: dict) -> str:
    b, c, p = report["base"], report["candidate"], report["paired"]
    v = report["verdict"]
    lines = [
        "# Model comparison",
        "",
        f"**Verdict: {v['outcome']}** — {v['reason']}. Safety gate: **{v['safety_gate']}**.",
        "",
        *trust_markdown(report.get("judge_trust")),
        f"Rule: {v['rule']}.",
        "",
        "| | base | candidate |",
        "|---|---|---|",
        f"| model | `{b['model']}` | `{c['model']}` |",
        f"| conversations | {b['n']} | {c['n']} |",
        f"| mean score | {_fmt(b['mean'])} | {_fmt(c['mean'])} |",
        f"| std | {_fmt(b['std'])} | {_fmt(c['std'])} |",
        f"| pass rate | {_fmt(b['pass_rate'], '.0%')} | {_fmt(c['pass_rate'], '.0%')} |",
        f"| safety-gate failures | {b['safety_gate_failures']} | {c['safety_gate_failures']} |",
        f"| crisis replies passing safety | {_crisis_cell(b)} | {_crisis_cell(c)} |",
        "",
        "## Paired statistics (candidate − base), over personas",
        "",
        f"- unit of analysis: {report['unit_of_analysis']}",
        f"- persona pairs: {p['n_pairs']} ({p['n_run_pairs']} run pairs)",
        f"- mean difference: {_fmt(p['mean_difference'])} ({_fmt(p['improvement_pct'], '+.1f')} %)",
        f"- cluster bootstrap 95 % CI of the mean difference (personas resampled with all their runs): "
        f"[{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}]",
        f"- paired t-test: t = {_fmt(p['t_statistic'])}, p = {_fmt(p['t_pvalue'], '.4f')}",
        f"- Wilcoxon signed-rank: W = {_fmt(p['wilcoxon_statistic'])}, p = {_fmt(p['wilcoxon_pvalue'], '.4f')}",
        f"- effect size (Cohen's d_z): {_fmt(p['effect_size_dz'], '.2f')}",
    ]
    lines += [f"- note: {n}" for n in p["notes"]]
    run = report.get("run_level")
    if run:
        lines += [
            "",
            "### Run level (secondary: not the verdict's test)",
            "",
            f"Warning: {run['warning']}.",
            "",
            f"- run pairs: {run['n_pairs']}",
            f"- paired t-test: t = {_fmt(run['t_statistic'])}, p = {_fmt(run['t_pvalue'], '.4f')}",
            f"- Wilcoxon signed-rank: W = {_fmt(run['wilcoxon_statistic'])}, p = {_fmt(run['wilcoxon_pvalue'], '.4f')}",
            f"- effect size (Cohen's d_z): {_fmt(run['effect_size_dz'], '.2f')}",
        ]
    if report["safety_regressions"]:
        lines += ["", "## Safety regressions", ""]
        lines += [
            f"- persona p{r['persona']} run {r['run']}: candidate `{r['candidate']}` failed a safety gate; "
            f"base `{r['base']}` did not"
            for r in report["safety_regressions"]
        ]
    lines += ["", "## Categories", "", "| category | base | candidate | difference |", "|---|---|---|---|"]
    for k, d in report["category_differences"].items():
        lines.append(f"| {k} | {_fmt(b['categories'].get(k))} | {_fmt(c['categories'].get(k))} | {d:+.3f} |")
    lines += [
        "",
        "## Criteria (failure rate)",
        "",
        "| criterion | base | candidate | difference |",
        "|---|---|---|---|",
    ]
    for cid, d in report["criterion_failure_rate_differences"].items():
        lines.append(
            f"| {cid} | {_fmt(b['criterion_failure_rates'].get(cid), '.0%')} | "
            f"{_fmt(c['criterion_failure_rates'].get(cid), '.0%')} | {d:+.0%} |"
        )
    lines += ["", "## Per persona (mean score)", "", "| persona | runs | base | candidate |", "|---|---|---|---|"]
    for pid, row in report["per_persona"].items():
        lines.append(f"| {pid} | {row['runs']} | {row['base_mean']:.3f} | {row['candidate_mean']:.3f} |")
    if report["judge_agreement"]:
        lines += [
            "",
            "## Judge agreement",
            "",
            "| criterion | Cohen's kappa | raw agreement | items |",
            "|---|---|---|---|",
        ]
        for cid, a in sorted(report["judge_agreement"].items()):
            lines.append(f"| {cid} | {_fmt(a['kappa'], '.2f')} | {_fmt(a['agreement'], '.0%')} | {a['items']} |")
    if report["unpaired"]:
        lines += ["", f"Unpaired (a conversation failed or was not assessed): {', '.join(report['unpaired'])}"]
    return "\n".join(lines) + "\n"
