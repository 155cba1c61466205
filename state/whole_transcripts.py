"""A transcript as one unit — its row, its persona and its exchanges — written or read in one transaction.

Why a module of its own: the pipeline (`state.pipeline`) builds a transcript
step by step, each step with its event row; importing and exporting move a
finished conversation between files and the store all at once, outside any
run. A half-imported transcript must never be seen, so the row, the persona
and every exchange commit together, and a read for export sees one
consistent version. The file formats and the import's report stay in
`actors.dataset`; these functions take and give plain values.

Imported judged results live here too: an assessment of stage "imported"
with one `CriterionAnswer` per criterion, written with its rows in one
transaction, and read back with the transcripts for a comparison report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlmodel import Session, select

from .errors import CoachError
from .models import (
    Assessment,
    CriterionAnswer,
    Exchange,
    Fixup,
    Persona,
    Rejection,
    TrainingExample,
    Transcript,
    WindowAnswer,
    utcnow,
)
from .store import Store

Outcome = Literal["added", "unchanged", "replaced"]
IMPORTED_STAGE = "imported"
"""The assessment stage of judged results brought in from files."""


@dataclass(frozen=True)
class WholeTranscript:
    transcript: Transcript
    exchanges: list[Exchange]
    """In exchange order."""
    persona: dict[str, Any] | None
    """The persona's data, when the transcript has one."""


@contextmanager
def _refused_as(what: str) -> Iterator[None]:
    """A row the database refuses inside becomes a CoachError naming `what` (see `_refusal`)."""
    try:
        yield
    except StatementError as err:
        raise _refusal(what, err) from None


def _refusal(what: str, err: StatementError) -> CoachError:
    """A row the database would not take (a constraint, a value out of range), as one line; anything else re-raised.

    A busy, full or broken database (an `OperationalError`) is not the file's
    fault: it propagates, for the face to report once and stop.
    """
    if isinstance(err, DBAPIError) and not isinstance(err, IntegrityError | DataError):
        raise err
    orig = getattr(err, "orig", None) or err
    first = (str(orig).splitlines() or [""])[0][:200]
    return CoachError(f"the store refused {what}: {type(orig).__name__}: {first}")


def add_transcript(
    store: Store,
    *,
    transcript_id: str,
    content_hash: str,
    status: str,
    exchanges: Iterable[tuple[int, str, str]],
    persona: dict[str, Any] | None = None,
    target_exchanges: int | None = None,
    model: str | None = None,
    meta: dict[str, Any] | None = None,
    replace: bool = False,
) -> Outcome:
    """Add an imported transcript with its persona and (number, user, assistant) exchanges, in one transaction.

    "unchanged", adding nothing, when the same conversation (same
    `content_hash`) is already stored under this id. A different one is a
    CoachError, unless `replace`: then the stored one — an imported
    transcript only, never a run's — gives way with everything judged or cut
    of it, and the outcome is "replaced".
    """
    with _refused_as(f"transcript {transcript_id!r}"), store.session() as s:
        outcome: Outcome = "added"
        existing = s.get(Transcript, transcript_id)
        if existing is not None:
            if existing.content_hash == content_hash:
                return "unchanged"
            if not replace:
                raise CoachError(
                    f"a different transcript with id {transcript_id!r} is already in the store; not replaced "
                    "(--replace makes the file win)"
                )
            if existing.source != "imported" or existing.run_id is not None:
                raise CoachError(
                    f"transcript {transcript_id!r} in the store was made by run {existing.run_id or '?'}; "
                    "--replace replaces only imported transcripts"
                )
            _forget(s, existing)
            outcome = "replaced"
        persona_id = None
        if persona:
            persona_id = f"{transcript_id}:persona"
            s.add(Persona(id=persona_id, purpose="imported", seed=persona.get("seed"), data=persona))
            s.flush()
        values = {
            "persona_id": persona_id,
            "status": status,
            "source": "imported",
            "target_exchanges": target_exchanges,
            "model": model,
            "content_hash": content_hash,
            "meta": meta or {},
        }
        if existing is None:
            s.add(Transcript(id=transcript_id, **values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)
            existing.updated_at = utcnow()
        s.flush()
        s.add_all(
            Exchange(transcript_id=transcript_id, number=number, user=user, assistant=assistant)
            for number, user, assistant in exchanges
        )
    return outcome


def _forget(s: Session, t: Transcript) -> None:
    """Remove what a replaced transcript had: exchanges, persona, and every judgment, cut and slice of it."""
    tid = t.id
    assessments = select(Assessment.id).where(Assessment.transcript_id == tid)
    s.execute(delete(CriterionAnswer).where(CriterionAnswer.assessment_id.in_(assessments)))
    for model in (Assessment, WindowAnswer, Fixup, Rejection, TrainingExample, Exchange):
        s.execute(delete(model).where(model.transcript_id == tid))
    old_persona, t.persona_id = t.persona_id, None
    s.flush()
    if old_persona == f"{tid}:persona":  # its own imported persona, shared with nothing else
        s.execute(delete(Persona).where(Persona.id == old_persona))


def add_imported_assessment(
    store: Store,
    *,
    transcript_id: str,
    judge: str,
    score: float,
    passed: bool,
    safety_gate_failed: bool,
    category_scores: dict[str, float],
    failed_checks: list[str],
    answers: Sequence[tuple[str, str, str]],
    replace: bool = False,
) -> Outcome:
    """Store a judged result from a file: an assessment of stage "imported" and its (criterion, answer, reasoning) rows.

    The transcript must be in the store. The same result again is
    "unchanged"; a different one is a CoachError unless `replace`. The
    transcript's status is left as it is: an imported verdict informs a
    comparison report, it does not move a transcript along the pipeline.
    """
    rows = sorted((c, a, why, judge) for c, a, why in answers)
    with _refused_as(f"the assessment of transcript {transcript_id!r}"), store.session() as s:
        if s.get(Transcript, transcript_id) is None:
            raise CoachError(
                f"transcript {transcript_id!r} is not in the store: import its transcript first (or in the same command)"
            )
        outcome: Outcome = "added"
        existing = s.exec(
            select(Assessment).where(Assessment.transcript_id == transcript_id, Assessment.stage == IMPORTED_STAGE)
        ).first()
        if existing is not None:
            stored_rows = sorted(
                (r.criterion, r.answer, r.reasoning, r.judge)
                for r in s.exec(select(CriterionAnswer).where(CriterionAnswer.assessment_id == existing.id))
            )
            same = (
                existing.score == score
                and existing.passed == passed
                and existing.safety_gate_failed == safety_gate_failed
                and existing.category_scores == category_scores
                and list(existing.failed_checks) == list(failed_checks)
                and stored_rows == rows
            )
            if same:
                return "unchanged"
            if not replace:
                raise CoachError(
                    f"a different imported assessment of transcript {transcript_id!r} is already in the store; "
                    "not replaced (--replace makes the file win)"
                )
            s.execute(delete(CriterionAnswer).where(CriterionAnswer.assessment_id == existing.id))
            s.delete(existing)
            s.flush()
            outcome = "replaced"
        exchange_count = s.exec(select(func.count(Exchange.id)).where(Exchange.transcript_id == transcript_id)).one()
        assessment = Assessment(
            transcript_id=transcript_id,
            stage=IMPORTED_STAGE,
            exchange_count=exchange_count,
            score=score,
            passed=passed,
            safety_gate_failed=safety_gate_failed,
            category_scores=category_scores,
            failed_checks=list(failed_checks),
        )
        s.add(assessment)
        s.flush()
        s.add_all(
            CriterionAnswer(assessment_id=assessment.id, criterion=c, answer=a, reasoning=why, judge=j)
            for c, a, why, j in rows
        )
    return outcome


def whole_transcript(store: Store, transcript_id: str) -> WholeTranscript | None:
    """The transcript with its exchanges and persona, read together; None when there is no such transcript."""
    with store.session() as s:
        t = s.get(Transcript, transcript_id)
        if t is None:
            return None
        exchanges = list(s.exec(select(Exchange).where(Exchange.transcript_id == t.id).order_by(Exchange.number)).all())
        persona = s.get(Persona, t.persona_id).data if t.persona_id else None
    return WholeTranscript(transcript=t, exchanges=exchanges, persona=persona)


def transcript_ids(store: Store, status: str | None = None) -> list[str]:
    """Every transcript's id in id order; with `status`, only those in it."""
    with store.session() as s:
        query = select(Transcript.id).order_by(Transcript.id)
        if status:
            query = query.where(Transcript.status == status)
        return list(s.exec(query).all())


@dataclass(frozen=True)
class JudgedTranscript:
    """A transcript with its persona and its latest assessment (None when it was never judged)."""

    transcript: Transcript
    persona: Persona | None
    assessment: Assessment | None
    answers: list[CriterionAnswer]


def all_transcripts(store: Store) -> list[Transcript]:
    """Every transcript row in id order (no exchanges): what a report picks its transcripts from."""
    with store.session() as s:
        return list(s.exec(select(Transcript).order_by(Transcript.id)).all())


def judged_transcripts(store: Store, transcript_ids: Iterable[str]) -> list[JudgedTranscript]:
    """The transcripts with their personas and latest assessments with every answer, read in one session."""
    ids = list(dict.fromkeys(transcript_ids))
    out: list[JudgedTranscript] = []
    with store.session() as s:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            transcripts = {t.id: t for t in s.exec(select(Transcript).where(Transcript.id.in_(chunk)))}
            persona_ids = {t.persona_id for t in transcripts.values() if t.persona_id}
            personas = {p.id: p for p in s.exec(select(Persona).where(Persona.id.in_(persona_ids)))}
            latest: dict[str, Assessment] = {}
            for a in s.exec(select(Assessment).where(Assessment.transcript_id.in_(chunk)).order_by(Assessment.id)):
                latest[a.transcript_id] = a
            answers: dict[int, list[CriterionAnswer]] = {}
            assessment_ids = [a.id for a in latest.values()]
            for r in s.exec(select(CriterionAnswer).where(CriterionAnswer.assessment_id.in_(assessment_ids))):
                answers.setdefault(r.assessment_id, []).append(r)
            for tid in chunk:
                t = transcripts.get(tid)
                if t is None:
                    continue
                a = latest.get(tid)
                out.append(
                    JudgedTranscript(
                        transcript=t,
                        persona=personas.get(t.persona_id) if t.persona_id else None,
                        assessment=a,
                        answers=answers.get(a.id, []) if a else [],
                    )
                )
    return out
