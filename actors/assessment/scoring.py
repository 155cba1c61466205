"""Rubric scoring: a pure function of the judge's answers.

Bugs here silently corrupt training data, so every rule is explicit and the
result says why it passed or failed:

- YES passes; NO fails; ERROR (unparsable or failed judge call) always fails,
  and any ERROR fails the transcript whatever the score.
- NA passes where the rubric allows it and fails where it does not
  (`na_invalid`).
- A criterion is *not assessed* when the conversation has fewer exchanges than
  its `min_turns`; it then leaves its category's average. A category with no
  assessed criterion scores 1.0 and keeps its weight, so scores stay
  comparable across lengths.
- A criterion missing from the answers although it should have been assessed
  is ERROR. When the length is unknown (an older assessment file), a missing
  answer counts as not assessed, except for safety gates and NA-invalid
  criteria, which every transcript can be judged on: missing those is ERROR.
- Any safety gate that does not pass rejects the transcript whatever the score.
- Retired criteria are never asked of the judge, but an older assessment that
  has them is scored with them so its recorded numbers are reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..pack.models import Rubric

Answer = Literal["YES", "NO", "NA", "ERROR"]
ANSWERS: tuple[Answer, ...] = ("YES", "NO", "NA", "ERROR")
_ALIASES = {"N/A": "NA", "N.A.": "NA", "NOT APPLICABLE": "NA", "Y": "YES", "N": "NO"}


def normalize_answer(raw: object) -> Answer:
    """Map a judge's raw answer to one of ANSWERS; anything unrecognised is ERROR."""
    if not isinstance(raw, str):
        return "ERROR"
    text = raw.strip().upper().rstrip(".")
    text = _ALIASES.get(text, text)
    return text if text in ANSWERS else "ERROR"  # type: ignore[return-value]


@dataclass(frozen=True)
class ScoreResult:
    score: float
    passed: bool
    threshold: float
    category_scores: dict[str, float]
    safety_gate_failed: bool
    failed_safety: list[str]
    failed_checks: list[str]
    error_count: int
    not_assessed: list[str]
    unknown_criteria: list[str] = field(default_factory=list)

    def as_dict(self, digits: int = 3) -> dict:
        return {
            "score": round(self.score, digits),
            "passed": self.passed,
            "threshold": self.threshold,
            "category_scores": {k: round(v, digits) for k, v in self.category_scores.items()},
            "safety_gate_failed": self.safety_gate_failed,
            "failed_safety": self.failed_safety,
            "failed_checks": self.failed_checks,
            "error_count": self.error_count,
            "not_assessed": self.not_assessed,
            "unknown_criteria": self.unknown_criteria,
        }


def _criterion_passes(answer: Answer, na_valid: bool) -> bool:
    return answer == "YES" or (answer == "NA" and na_valid)


def compute_score(rubric: Rubric, answers: dict[str, object], exchange_count: int | None = None) -> ScoreResult:
    """Score one transcript's answers (criterion id -> YES/NO/NA/ERROR) against `rubric`.

    `exchange_count` is the transcript's length in exchanges, when known; it
    decides which criteria were due (see the module docstring).
    """
    normalized = {cid: normalize_answer(raw) for cid, raw in answers.items()}
    gates = set(rubric.safety_gates)
    na_invalid = set(rubric.na_invalid)

    # (criterion id, category or None, answer or None when not assessed)
    rows: list[tuple[str, str | None, Answer | None]] = []
    for c in rubric.criteria:
        due = exchange_count is None or exchange_count >= c.min_turns
        if not due:
            rows.append((c.id, c.category, None))
        elif c.id in normalized:
            rows.append((c.id, c.category, normalized[c.id]))
        elif exchange_count is not None or c.id in gates or c.id in na_invalid:
            rows.append((c.id, c.category, "ERROR"))
        else:
            rows.append((c.id, c.category, None))
    for r in rubric.retired:
        if r.id in normalized:
            rows.append((r.id, r.category, normalized[r.id]))

    known = {cid for cid, _, _ in rows} | {r.id for r in rubric.retired}
    unknown = sorted(cid for cid in normalized if cid not in known)

    failed_checks: list[str] = []
    failed_safety: list[str] = []
    not_assessed: list[str] = []
    tallies: dict[str, list[int]] = {name: [0, 0] for name in rubric.categories}  # passed, counted
    errors = 0
    for cid, category, answer in rows:
        if answer is None:
            not_assessed.append(cid)
            continue
        errors += answer == "ERROR"
        ok = _criterion_passes(answer, na_valid=cid not in na_invalid)
        if not ok:
            failed_checks.append(cid)
            if cid in gates:
                failed_safety.append(cid)
        if category is not None:
            tallies[category][0] += ok
            tallies[category][1] += 1

    category_scores = {name: (passed / counted if counted else 1.0) for name, (passed, counted) in tallies.items()}
    score = sum(rubric.categories[name].weight * value for name, value in category_scores.items())
    safety_failed = bool(failed_safety)
    # Round before comparing so a score shown as 0.800 never fails a 0.80 threshold by float noise.
    passed = round(score, 9) >= rubric.pass_threshold and not safety_failed and errors == 0
    return ScoreResult(
        score=score,
        passed=passed,
        threshold=rubric.pass_threshold,
        category_scores=category_scores,
        safety_gate_failed=safety_failed,
        failed_safety=failed_safety,
        failed_checks=failed_checks,
        error_count=errors,
        not_assessed=not_assessed,
        unknown_criteria=unknown,
    )
