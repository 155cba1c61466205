"""A comparison report from transcripts already in the store: nothing is generated or judged again.

`coach eval report --base GLOB --candidate GLOB` picks each side's
transcripts by their model field or id (shell-style globs), reads their
latest assessment (judged by coach, or imported from the earlier
implementation's assessment files), pairs base with candidate and hands the
pairs to the same functions `coach eval compare` reports with (`compare`,
`comparison_report`, `comparison_markdown` in `protocol`).

Pairing: by persona when every transcript says which persona it used (the
persona's `id`, else its `seed`, else a persona row shared by an evaluation
run); several transcripts of one persona pair run by run in id order. When
some transcript does not say, both sides pair by order instead: base and
candidate each sorted by id, the first with the first. The report says
which it did.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass, field

from state import whole_transcripts
from state.errors import CoachError
from state.store import Store
from state.whole_transcripts import JudgedTranscript

from .protocol import TranscriptResult, compare, comparison_markdown, comparison_report


@dataclass
class Pairing:
    by: str  # persona | order
    note: str
    base: list[TranscriptResult] = field(default_factory=list)
    candidate: list[TranscriptResult] = field(default_factory=list)
    candidate_unpaired: list[str] = field(default_factory=list)
    """Candidate transcripts with no base counterpart (`compare` lists the base side's)."""


@dataclass(frozen=True)
class StoredComparison:
    base: str
    candidate: str
    base_transcripts: int
    candidate_transcripts: int
    pairing: Pairing
    report: dict
    markdown: str


def select_transcripts(store: Store, pattern: str, option: str) -> list[JudgedTranscript]:
    """Transcripts whose model field or id matches the glob, with their latest assessments."""
    ids = [
        t.id
        for t in whole_transcripts.all_transcripts(store)
        if fnmatch.fnmatchcase(t.id, pattern) or fnmatch.fnmatchcase(t.model or str(t.meta.get("model") or ""), pattern)
    ]
    if not ids:
        raise CoachError(f"{option} {pattern!r}: no transcript in the store has a model or id matching it")
    return whole_transcripts.judged_transcripts(store, ids)


def persona_key(j: JudgedTranscript) -> str | None:
    """Which persona the transcript used, when it says: the persona's id, else its seed, else a shared row."""
    p = j.persona
    if p is None:
        return None
    data = p.data if isinstance(p.data, dict) else {}
    if isinstance(data.get("id"), str | int) and not isinstance(data.get("id"), bool):
        return f"id:{data['id']}"
    seed = data.get("seed", p.seed)
    if isinstance(seed, int) and not isinstance(seed, bool):
        return f"seed:{seed}"
    if p.purpose != "imported":  # an evaluation run's persona row is shared by every model under test
        return f"row:{p.id}"
    return None


def _result(j: JudgedTranscript, label: str, persona_index: int, run_index: int) -> TranscriptResult:
    a = j.assessment
    judges = sorted({r.judge for r in j.answers})
    chosen = "combined" if "combined" in judges else (judges[0] if judges else None)
    by_judge: dict[str, dict[str, str]] = defaultdict(dict)
    for r in j.answers:
        if r.judge != "combined":
            by_judge[r.judge][r.criterion] = r.answer
    return TranscriptResult(
        transcript_id=j.transcript.id,
        model=label,
        persona_index=persona_index,
        run_index=run_index,
        status=j.transcript.status,
        score=a.score if a else None,
        passed=bool(a and a.passed),
        safety_failed=bool(a and a.safety_gate_failed),
        category_scores=dict(a.category_scores) if a else {},
        answers={r.criterion: r.answer for r in j.answers if r.judge == chosen},
        by_judge=dict(by_judge),
    )


def _run_order(j: JudgedTranscript) -> tuple:
    run = j.transcript.meta.get("run_index")
    return (run if isinstance(run, int) else 0, j.transcript.id)


def pair(base: list[JudgedTranscript], candidate: list[JudgedTranscript], labels: tuple[str, str]) -> Pairing:
    """Give each side's transcripts persona and run indexes so that `compare` pairs the right ones."""
    keys = {j.transcript.id: persona_key(j) for j in (*base, *candidate)}
    if all(keys.values()):
        groups: tuple[dict[str, list[JudgedTranscript]], ...] = (defaultdict(list), defaultdict(list))
        for side, group in zip((base, candidate), groups, strict=True):
            for j in sorted(side, key=_run_order):
                group[keys[j.transcript.id]].append(j)
        order = list(dict.fromkeys([*groups[0], *groups[1]]))
        pairing = Pairing("persona", "")
        for i, key in enumerate(order):
            pairing.base += [_result(j, labels[0], i, k) for k, j in enumerate(groups[0].get(key, []))]
            pairing.candidate += [_result(j, labels[1], i, k) for k, j in enumerate(groups[1].get(key, []))]
            extra = groups[1].get(key, [])[len(groups[0].get(key, [])) :]
            pairing.candidate_unpaired += [j.transcript.id for j in extra]
        shared = len(set(groups[0]) & set(groups[1]))
        runs = any(len(g) > 1 for side in groups for g in side.values())
        pairing.note = f"paired by persona: {shared} persona(s) have transcripts on both sides" + (
            "; several transcripts of one persona pair run by run in id order" if runs else ""
        )
        return pairing
    silent = sorted(tid for tid, key in keys.items() if key is None)
    named = ", ".join(silent[:3]) + (f" and {len(silent) - 3} more" if len(silent) > 3 else "")
    pairing = Pairing(
        "order",
        f"paired by order, not by persona ({named} do(es) not say which persona was used): "
        "base and candidate transcripts each sorted by id, the first with the first",
    )
    ordered = (sorted(base, key=lambda j: j.transcript.id), sorted(candidate, key=lambda j: j.transcript.id))
    pairing.base = [_result(j, labels[0], i, 0) for i, j in enumerate(ordered[0])]
    pairing.candidate = [_result(j, labels[1], i, 0) for i, j in enumerate(ordered[1])]
    pairing.candidate_unpaired = [j.transcript.id for j in ordered[1][len(ordered[0]) :]]
    return pairing


def stored_comparison(
    store: Store, base: str, candidate: str, *, seed: int = 0, judge_trust: dict | None = None
) -> StoredComparison:
    """Compare the transcripts matching `base` with those matching `candidate`, from their stored assessments.

    `judge_trust`: the report's `judge_trust` entry (`actors.assessment.judge_trust`), shown under the verdict.
    """
    if base == candidate:
        raise CoachError("--base and --candidate are the same pattern: give each side its own")
    base_side = select_transcripts(store, base, "--base")
    cand_side = select_transcripts(store, candidate, "--candidate")
    both = sorted({j.transcript.id for j in base_side} & {j.transcript.id for j in cand_side})
    if both:
        raise CoachError(
            f"{len(both)} transcript(s) match both --base and --candidate ({', '.join(both[:3])}"
            f"{' …' if len(both) > 3 else ''}): make the patterns tell the sides apart"
        )
    for option, pattern, side in (("--base", base, base_side), ("--candidate", candidate, cand_side)):
        if not any(j.assessment for j in side):
            raise CoachError(
                f"{option} {pattern!r}: none of its {len(side)} transcript(s) has an assessment: "
                "import the judged results (`coach import` reads assessment files) or judge them first"
            )
    pairing = pair(base_side, cand_side, (base, candidate))
    results = [*pairing.base, *pairing.candidate]
    comparison = compare(results, base, candidate, seed=seed)
    if not comparison.pairs:
        raise CoachError(f"no base transcript has a judged candidate counterpart ({pairing.note}); nothing to compare")
    report = comparison_report(comparison, results)
    report["source"] = {
        "from": "store",
        "base": {"pattern": base, "transcripts": len(base_side)},
        "candidate": {"pattern": candidate, "transcripts": len(cand_side)},
        "pairing": pairing.by,
        "pairing_note": pairing.note,
        "candidate_unpaired": pairing.candidate_unpaired,
    }
    if judge_trust is not None:
        report["judge_trust"] = judge_trust
    markdown = comparison_markdown(report)
    title, _, rest = markdown.partition("\n")
    source = (
        f"From transcripts already in the store: base `{base}` ({len(base_side)} transcripts), "
        f"candidate `{candidate}` ({len(cand_side)} transcripts); {pairing.note}."
    )
    if pairing.candidate_unpaired:
        source += f" Candidate transcripts without a base: {', '.join(pairing.candidate_unpaired)}."
    markdown = f"{title}\n\n{source}\n{rest}"
    return StoredComparison(base, candidate, len(base_side), len(cand_side), pairing, report, markdown)
