"""Take back a person's review decision, in one transaction, while nothing has acted on it yet.

Why a separate step and not a second decision: a decision does more than set
a column. Accepting rewrote a reply; rejecting cut the transcript (the cut
exchanges live on in the rejection record) or rejected it whole, and
superseded the fixups past the cut. Undoing restores all of that exactly and
puts the transcript back in `review`.

Why "while nothing has acted on it": once the transcript was judged again, or
a later decision on it was made, the data downstream was built on this
decision; undoing it then would leave an assessment or a training slice that
describes a conversation which no longer exists. So the undo is refused then,
with the reason. Moving a transcript back to `review` is the one move
`state.status` does not list; it is written here, with its event, only under
those conditions.
"""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import Session, select

from .errors import CoachError
from .models import Assessment, Exchange, Fixup, Rejection, Transcript, utcnow
from .pipeline import _event
from .status import TranscriptStatus

UNDOABLE = ("accepted", "rejected")
BY_PERSON = "human"
UNDOABLE_FROM = frozenset({TranscriptStatus.REVIEW, TranscriptStatus.ASSESSING, TranscriptStatus.REJECTED})
"""Where a person's decision leaves a transcript; anywhere else, the run has moved on."""


class CannotUndo(CoachError):
    """The decision stands: it is not a person's, or something already acted on it."""


def undo_decision(store, fixup_id: int) -> str:
    """Put a person's decision back to pending and undo what it did; returns the transcript's status (`review`).

    Raises `CannotUndo` naming why when the fixup is not decided by a person,
    or when the transcript has moved on since (judged again, decided again).
    """
    with store.session() as s:
        f = s.get(Fixup, fixup_id)
        if f is None:
            raise CannotUndo(f"no fixup {fixup_id} in this workspace")
        t = s.get(Transcript, f.transcript_id)
        _check(s, f, t)
        if f.decision == "accepted":
            _restore_reply(s, f)
        else:
            _restore_cut(s, f, t)
        f.decision, f.decided_by, f.decided_at = "pending", "", None
        _event(s, t.run_id, "DecisionMade", transcript_id=t.id, fixup_id=f.id, decision="pending", by="undo")
        if t.status != TranscriptStatus.REVIEW:
            t.status = TranscriptStatus.REVIEW
            _event(s, t.run_id, "TranscriptStatus", transcript_id=t.id, status=t.status, undone=fixup_id)
        t.updated_at = utcnow()
        return t.status


def _check(s: Session, f: Fixup, t: Transcript) -> None:
    if f.decision == "pending":
        raise CannotUndo(f"fixup {f.id} is not decided yet: nothing to undo")
    if f.decision not in UNDOABLE or f.decided_by != BY_PERSON:
        raise CannotUndo(
            f"fixup {f.id} was {f.decision} by {f.decided_by or 'the pipeline'}, not by a person in review: "
            "only a review decision can be undone"
        )
    later = s.exec(
        select(Fixup.id).where(
            Fixup.transcript_id == t.id,
            Fixup.id != f.id,
            Fixup.decided_by == BY_PERSON,
            Fixup.decided_at > f.decided_at,
        )
    ).first()
    if later is not None:
        raise CannotUndo(f"fixup {later} of {t.id} was decided after fixup {f.id}: undo that one first")
    judged = s.exec(
        select(func.count())
        .select_from(Assessment)
        .where(Assessment.transcript_id == t.id, Assessment.created_at > f.decided_at)
    ).one()
    if judged or t.status not in UNDOABLE_FROM:
        raise CannotUndo(
            f"{t.id} was judged again after this decision (it is {t.status} now): the run has moved on, "
            "so the decision stands"
        )


def _restore_reply(s: Session, f: Fixup) -> None:
    row = s.exec(
        select(Exchange).where(Exchange.transcript_id == f.transcript_id, Exchange.number == f.exchange_number)
    ).first()
    if row is None or row.assistant != f.proposed:
        raise CannotUndo(f"exchange {f.exchange_number} of {f.transcript_id} changed since the rewrite was accepted")
    row.assistant = f.original


def _restore_cut(s: Session, f: Fixup, t: Transcript) -> None:
    """Bring back what rejecting did: the cut exchanges and the fixups they carried, or the whole transcript."""
    keep = f.exchange_number - 1
    record = s.exec(
        select(Rejection).where(
            Rejection.transcript_id == t.id,
            Rejection.stage == "review",
            Rejection.reason_kind == BY_PERSON,
            Rejection.kept_exchanges == keep,
        )
    ).first()
    if record is None:
        return  # nothing was cut (a rejection with no cut): only the decision itself goes back
    if record.action == "truncated":
        for row in json.loads(record.detail or "[]"):
            s.add(Exchange(transcript_id=t.id, number=row["number"], user=row["user"], assistant=row["assistant"]))
        for other in s.exec(
            select(Fixup).where(
                Fixup.transcript_id == t.id,
                Fixup.exchange_number > keep,
                Fixup.decision == "superseded",
                Fixup.decided_by == "truncation",
                Fixup.decided_at >= f.decided_at,
            )
        ).all():
            other.decision, other.decided_by, other.decided_at = "pending", "", None
    s.delete(record)
