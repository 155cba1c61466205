"""An evaluation's conversations, paired: the same persona and run, one conversation per model, with the judge's word.

Statistics say whether the candidate is better; a person still needs to see
*why*: what each model replied to the same simulated person, and what the
judge said on every criterion about each. `eval_pairs` lists the pairs of a
run (cheap: scores only), `pair_detail` reads one pair whole (exchanges and
every judge's answer and reasoning). Pairing follows the protocol: a
comparison's two conversations of persona p, run r share their seeds
(`persona_index`, `run_index` in each transcript's meta).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from actors.evaluation.reports import EvalRunInfo
from state import pipeline as db
from state.store import Store

DECIDING = "combined"
"""The judge name of the answer several judges' verdicts were combined into (see the assessor)."""


@dataclass(frozen=True)
class PairSide:
    """One model's conversation of a pair, as its latest assessment scored it (None fields: not assessed yet)."""

    transcript_id: str
    model: str
    status: str
    score: float | None
    passed: bool | None
    safety_failed: bool
    failed_checks: tuple[str, ...]


@dataclass(frozen=True)
class EvalPair:
    persona_index: int
    run_index: int
    persona_id: str | None
    persona: str
    """A line about the simulated person: name and age when enriched, then topics."""
    sides: tuple[PairSide | None, ...]
    """(base, candidate) for a comparison, (model,) for a base evaluation; None where that model has no
    conversation yet."""

    @property
    def key(self) -> str:
        return f"p{self.persona_index}-r{self.run_index}"

    @property
    def difference(self) -> float | None:
        """candidate − base score, when both are scored."""
        if len(self.sides) != 2 or any(s is None or s.score is None for s in self.sides):
            return None
        return self.sides[1].score - self.sides[0].score  # type: ignore[union-attr, operator]


@dataclass(frozen=True)
class JudgeAnswer:
    judge: str
    answer: str
    reasoning: str


@dataclass(frozen=True)
class Verdict:
    """One criterion for one conversation: the answer that counted and what each judge said."""

    criterion: str
    answer: str
    answers: tuple[JudgeAnswer, ...]


@dataclass(frozen=True)
class SideDetail:
    side: PairSide
    exchanges: tuple[tuple[int, str, str], ...]
    """(number, user message, assistant reply)."""
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def persona_line(data: dict) -> str:
    """`Dana, 30-39 · work stress / deadlines, sleep` from a persona's stored data (what there is of it)."""
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    who = ", ".join(str(profile[k]) for k in ("name", "age_range") if profile.get(k))
    topics = [
        f"{t.get('topic')}" + (f" / {t['subtopic']}" if t.get("subtopic") else "")
        for t in data.get("topic_seeds") or []
        if isinstance(t, dict) and t.get("topic")
    ]
    return " · ".join(part for part in (who, ", ".join(topics)) if part) or "(persona not enriched yet)"


def _side(transcript, found) -> PairSide:
    assessment = found[0] if found else None
    return PairSide(
        transcript_id=transcript.id,
        model=str(transcript.meta.get("model", "")),
        status=transcript.status,
        score=assessment.score if assessment else None,
        passed=assessment.passed if assessment else None,
        safety_failed=bool(assessment and assessment.safety_gate_failed),
        failed_checks=tuple(assessment.failed_checks or ()) if assessment else (),
    )


def eval_pairs(store: Store, run_id: str) -> tuple[EvalRunInfo, list[EvalPair]] | None:
    """The run and its pairs in persona, then run, order; None when there is no such evaluation run."""
    run = db.get_run(store, run_id)
    if run is None or run.kind != "eval":
        return None
    transcripts = db.run_transcripts(store, run_id)
    seen = list(dict.fromkeys(str(t.meta.get("model", "")) for t in transcripts))
    info = EvalRunInfo.from_run(run, seen)
    if info.kind == "compare":  # two sides, always: a model without conversations yet shows as None
        order = [info.base or (seen[0] if seen else ""), info.candidate or (seen[1] if len(seen) > 1 else "")]
    else:
        order = [info.base or (seen[0] if seen else "")]
    personas = db.personas_by_id(store, {t.persona_id for t in transcripts if t.persona_id})
    grouped: dict[tuple[int, int], dict[str, PairSide]] = defaultdict(dict)
    persona_of: dict[tuple[int, int], str | None] = {}
    for t in transcripts:
        key = (int(t.meta.get("persona_index", 0)), int(t.meta.get("run_index", 0)))
        grouped[key][str(t.meta.get("model", ""))] = _side(t, db.latest_assessment(store, t.id))
        persona_of.setdefault(key, t.persona_id)
    pairs = []
    for key in sorted(grouped):
        pid = persona_of[key]
        persona = personas.get(pid) if pid else None
        pairs.append(
            EvalPair(
                persona_index=key[0],
                run_index=key[1],
                persona_id=pid,
                persona=persona_line(persona.data if persona and isinstance(persona.data, dict) else {}),
                sides=tuple(grouped[key].get(model) for model in order),
            )
        )
    return info, pairs


def _verdicts(rows) -> dict[str, Verdict]:
    by_criterion: dict[str, list] = defaultdict(list)
    for row in rows:
        by_criterion[row.criterion].append(row)
    out = {}
    for cid, answers in by_criterion.items():
        deciding = next((a for a in answers if a.judge == DECIDING), None)
        judges = [a for a in answers if a.judge != DECIDING] or answers
        out[cid] = Verdict(
            criterion=cid,
            answer=(deciding or judges[0]).answer,
            answers=tuple(JudgeAnswer(a.judge or "judge", a.answer, a.reasoning or "") for a in judges),
        )
    return out


def pair_detail(store: Store, pair: EvalPair) -> tuple[SideDetail | None, ...]:
    """Each side's exchanges and verdicts, read now (a running evaluation may have added to them)."""
    out = []
    for side in pair.sides:
        if side is None:
            out.append(None)
            continue
        found = db.latest_assessment(store, side.transcript_id)
        exchanges = tuple((e.number, e.user or "", e.assistant or "") for e in db.exchanges(store, side.transcript_id))
        out.append(
            SideDetail(
                side=_side(db.transcript(store, side.transcript_id), found),
                exchanges=exchanges,
                verdicts=_verdicts(found[1]) if found else {},
            )
        )
    return tuple(out)
