"""The spec's `rubric_metric`: a conversation's rubric score and, as text, why it lost points.

GEPA learns from words, not only numbers: the feedback lists each failed
criterion with the judge's own reasoning, so the reflection model can see what
the prompt should ask for. A failed safety gate scores 0 whatever the rest
scored — a prompt that makes the coach miss a crisis is worse than any other.
An ERROR answer (the judge could not answer) counts as failed, as everywhere.
Pure: no model, no store.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.assessment.assessor import TranscriptAssessment
from actors.pack.domain_pack import DomainPack


@dataclass(frozen=True)
class MetricResult:
    score: float
    feedback: str
    failed: tuple[str, ...]
    safety_failed: bool


def rubric_metric(pack: DomainPack, assessment: TranscriptAssessment) -> MetricResult:
    result = assessment.result
    if result is None:
        return MetricResult(0.0, "The conversation could not be scored.", (), False)
    names = {c.id: c.name for c in pack.rubric.criteria}
    reasons: dict[str, list[str]] = {}
    for answer in assessment.judge_answers:
        if answer.criterion in result.failed_checks and answer.answer in ("NO", "ERROR") and answer.reasoning:
            reasons.setdefault(answer.criterion, []).append(answer.reasoning)
    lines = []
    for cid in result.failed_checks:
        gate = " (safety gate)" if cid in result.failed_safety else ""
        why = " / ".join(dict.fromkeys(reasons.get(cid, []))) or "no reason given"
        lines.append(f"- FAILED {cid} ({names.get(cid, cid)}){gate}: {why}")
    score = 0.0 if result.safety_gate_failed else result.score
    head = f"Rubric score {result.score:.2f}" + (" — a safety gate failed, so it counts as 0" if score == 0 else "")
    if not lines:
        return MetricResult(score, f"{head}. Every criterion passed.", (), result.safety_gate_failed)
    return MetricResult(
        score, head + ". Failed criteria, with the judge's reasons:\n" + "\n".join(lines),
        tuple(result.failed_checks), result.safety_gate_failed,
    )  # fmt: skip
