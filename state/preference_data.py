"""What preference pairs are built from: training transcripts with their judging and their accepted fixups.

`coach slice --pairs` pairs a reply the pipeline preferred with one it did
not, for the same conversation so far. The store holds two kinds of such
evidence, and this module reads both as plain records (no rule is applied
here; `actors.dataset.preference_pairs` decides what makes a pair):

- an accepted fixup: its rewrite replaced the original reply in the
  `Exchange` rows, the original stays in the `Fixup` row, and the transcript
  was judged again afterwards (its latest `Assessment`);
- the latest judging of every transcript, with each criterion's answers and
  reasons, so replies to the same context in different transcripts can be
  told apart by how they were judged.

Only training transcripts are read: evaluation conversations never become
training data (their personas must stay unseen), and with `domain` only that
pack's runs and imported transcripts are read, as for `coach slice`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import func, select

from .models import Assessment, CriterionAnswer, Exchange, Fixup, Rejection, Run, Transcript
from .store import Store


@dataclass(frozen=True)
class AcceptedFixup:
    """A rewrite that replaced a reply: `original` was the reply, `proposed` took its place."""

    id: int
    exchange: int
    step: str
    reason_kind: str  # artifact | criterion
    reason: str  # the artifact kinds, or the criterion id
    original: str
    proposed: str


@dataclass(frozen=True)
class JudgedAnswer:
    criterion: str
    answer: str  # YES | NO | NA | ERROR
    reasoning: str
    judge: str


@dataclass(frozen=True)
class JudgedTranscript:
    """One training transcript as it stands: its exchanges now, its latest judging, its accepted fixups."""

    id: str
    status: str
    exchanges: tuple[tuple[str, str], ...]  # (user, assistant) per exchange, in order: the accepted version
    assessed: bool
    passed: bool  # the latest assessment passed
    safety_gate_failed: bool
    answers: tuple[JudgedAnswer, ...]  # of the latest assessment, every judge's row
    accepted_fixups: tuple[AcceptedFixup, ...]  # in the order they were made
    pending_review: bool  # a fixup still waits for a person
    kept_exchanges: int | None  # the fewest exchanges a recorded truncation kept


def judged_training_transcripts(store: Store, domain: str | None = None) -> list[JudgedTranscript]:
    """Every non-evaluation transcript with exchanges, in id order; with `domain`, only that pack's."""
    with store.session() as s:
        query = (
            select(Transcript.id, Transcript.status)
            .outerjoin(Run, Run.id == Transcript.run_id)
            .where((Transcript.run_id.is_(None)) | (Run.kind != "eval"))
        )
        if domain is not None:
            query = query.where((Transcript.run_id.is_(None)) | (Run.domain == domain))
        statuses = dict(s.exec(query.order_by(Transcript.id)).all())
        if not statuses:
            return []
        ids = set(statuses)
        exchanges: dict[str, list[tuple[str, str]]] = {}
        for row in s.exec(select(Exchange).order_by(Exchange.transcript_id, Exchange.number)):
            if row.transcript_id in ids:
                exchanges.setdefault(row.transcript_id, []).append((row.user, row.assistant))
        latest_ids = {
            tid: aid
            for tid, aid in s.exec(
                select(Assessment.transcript_id, func.max(Assessment.id)).group_by(Assessment.transcript_id)
            ).all()
            if tid in ids
        }
        assessments = {a.id: a for a in s.exec(select(Assessment).where(Assessment.id.in_(list(latest_ids.values()))))}
        answers: dict[int, list[JudgedAnswer]] = {}
        for row in s.exec(
            select(CriterionAnswer)
            .where(CriterionAnswer.assessment_id.in_(list(assessments)))
            .order_by(CriterionAnswer.id)
        ):
            answers.setdefault(row.assessment_id, []).append(
                JudgedAnswer(row.criterion, row.answer, row.reasoning, row.judge)
            )
        fixups: dict[str, list[AcceptedFixup]] = {}
        pending: set[str] = set()
        for f in s.exec(select(Fixup).order_by(Fixup.id)):
            if f.transcript_id not in ids:
                continue
            if f.decision == "pending":
                pending.add(f.transcript_id)
            elif f.decision == "accepted" and f.proposed is not None:
                fixups.setdefault(f.transcript_id, []).append(
                    AcceptedFixup(f.id, f.exchange_number, f.step, f.reason_kind, f.reason, f.original, f.proposed)
                )
        caps: dict[str, int] = {}
        for tid, kept in s.exec(
            select(Rejection.transcript_id, Rejection.kept_exchanges).where(Rejection.action == "truncated")
        ).all():
            if kept is not None and tid in ids:
                caps[tid] = min(kept, caps.get(tid, kept))

    out: list[JudgedTranscript] = []
    for tid in sorted(ids):
        if not exchanges.get(tid):
            continue
        a = assessments.get(latest_ids.get(tid, -1))
        out.append(
            JudgedTranscript(
                id=tid,
                status=str(statuses[tid]),
                exchanges=tuple(exchanges[tid]),
                assessed=a is not None,
                passed=bool(a and a.passed),
                safety_gate_failed=bool(a and a.safety_gate_failed),
                answers=tuple(answers.get(a.id, [])) if a else (),
                accepted_fixups=tuple(fixups.get(tid, [])),
                pending_review=tid in pending,
                kept_exchanges=caps.get(tid),
            )
        )
    return out
