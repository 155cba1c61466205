"""The reads behind a run's monitor: a few grouped queries, whatever the run's size.

The monitor redraws a run from these when it opens one, catches up after
another screen, or follows a run another process owns; the faces never
build SQL themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import select

from .models import Assessment, Exchange, Rejection, Run, Transcript
from .store import Store


@dataclass
class RunOverview:
    run: Run | None
    transcripts: list[Transcript] = field(default_factory=list)
    exchanges: dict[str, int] = field(default_factory=dict)
    """Completed exchanges (with a reply) per transcript."""
    assessments: list[tuple[str, float, bool]] = field(default_factory=list)
    """(transcript, score, passed) of every assessment, oldest first."""


def run_overview(store: Store, run_id: str) -> RunOverview:
    with store.session() as s:
        run = s.get(Run, run_id)
        transcripts = list(s.exec(select(Transcript).where(Transcript.run_id == run_id).order_by(Transcript.id)))
        counts = dict(
            s.exec(
                select(Exchange.transcript_id, func.count())
                .join(Transcript, Transcript.id == Exchange.transcript_id)
                .where(Transcript.run_id == run_id, Exchange.assistant != "")
                .group_by(Exchange.transcript_id)
            ).all()
        )
        assessments = [
            tuple(row)
            for row in s.exec(
                select(Assessment.transcript_id, Assessment.score, Assessment.passed)
                .join(Transcript, Transcript.id == Assessment.transcript_id)
                .where(Transcript.run_id == run_id)
                .order_by(Assessment.id)
            ).all()
        ]
    return RunOverview(run=run, transcripts=transcripts, exchanges=counts, assessments=assessments)


def rejection_reasons(store: Store, run_id: str | None) -> list[tuple[str, str, str]]:
    """(action, reason kind, reason) of every rejection and truncation in the run."""
    with store.session() as s:
        return [
            tuple(row)
            for row in s.exec(
                select(Rejection.action, Rejection.reason_kind, Rejection.reason)
                .join(Transcript, Transcript.id == Rejection.transcript_id)
                .where(Transcript.run_id == run_id)
            ).all()
        ]
