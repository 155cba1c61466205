"""What a run has done so far, read back from its event rows: for a monitor that opens, resumes or follows it.

Why from the events: every step of a run commits an `Event` row in the same
transaction as its data (a user message, a reply, a status move, a judging),
so they are the run's own account of its work. Counting them gives the
per-actor counters a resumed run starts from, and reading the new ones is
how a run another process owns is followed as it goes. Each function here is
one or two grouped, indexed queries, whatever the run's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from .models import Event, Transcript, WindowAnswer
from .status import TranscriptStatus
from .store import Store


@dataclass
class StepCount:
    """Steps of one kind and the tokens their calls used (where the step's event row recorded them)."""

    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class RunActivity:
    personas: int = 0
    """Personas made ready (each is enriched once, however many transcripts share it)."""
    user_messages: StepCount = field(default_factory=StepCount)
    replies: StepCount = field(default_factory=StepCount)
    assessments: StepCount = field(default_factory=StepCount)
    curation_passes: int = 0
    """Times a transcript was handed to the curator (to curate, or to fix after judging)."""
    failures: dict[str, int] = field(default_factory=dict)
    """Failed steps per actor (`failed_actor`, or where the transcript failed from when older rows lack it)."""


FAILED_FROM_ACTOR = {
    TranscriptStatus.PLANNED: "persona",
    TranscriptStatus.GENERATING: "simulator",
    TranscriptStatus.CURATING: "curator",
    TranscriptStatus.FIXING: "curator",
    TranscriptStatus.ASSESSING: "assessor",
}


def _int(key: str):
    return func.coalesce(func.sum(Event.payload[key].as_integer()), 0)


def run_activity(store: Store, run_id: str) -> RunActivity:
    """Counts of a run's steps by kind, with their tokens, from its event rows."""
    found = RunActivity()
    with store.session() as s:
        rows = s.exec(
            select(Event.kind, func.count(), _int("prompt_tokens"), _int("completion_tokens"))
            .where(Event.run_id == run_id, Event.kind.in_(("UserMessage", "ExchangeAdded", "AssessmentDone")))
            .group_by(Event.kind)
        ).all()
        personas = s.exec(
            select(func.count(func.distinct(Event.payload["persona_id"].as_string()))).where(
                Event.run_id == run_id, Event.kind == "PersonaReady"
            )
        ).one()
        # Grouped by the columns' labels: PostgreSQL binds each repeated JSON key as a parameter of its
        # own, and would not see a GROUP BY repeating the expressions as the same ones.
        status, actor, failed_from = (
            Event.payload[key].as_string().label(key) for key in ("status", "failed_actor", "failed_from")
        )
        moves = s.exec(
            select(status, actor, failed_from, func.count())
            .where(Event.run_id == run_id, Event.kind == "TranscriptStatus")
            .group_by(status, actor, failed_from)
        ).all()
    kinds = {"UserMessage": found.user_messages, "ExchangeAdded": found.replies, "AssessmentDone": found.assessments}
    for kind, steps, prompt, completion in rows:
        kinds[kind].steps, kinds[kind].prompt_tokens, kinds[kind].completion_tokens = steps, prompt, completion
    found.personas = personas or 0
    for status, actor, failed_from, count in moves:
        if status in (TranscriptStatus.CURATING, TranscriptStatus.FIXING):
            found.curation_passes += count
        elif status == TranscriptStatus.FAILED:
            who = actor or FAILED_FROM_ACTOR.get(failed_from or "", "simulator")
            found.failures[who] = found.failures.get(who, 0) + count
    return found


@dataclass
class StoredEvent:
    id: int
    kind: str
    transcript_id: str | None
    payload: dict
    created_at: datetime


def last_event_id(store: Store, run_id: str) -> int:
    with store.session() as s:
        return s.exec(select(func.max(Event.id)).where(Event.run_id == run_id)).one() or 0


def events_after(store: Store, run_id: str, after_id: int, limit: int = 5000) -> list[StoredEvent]:
    """A run's event rows newer than `after_id`, oldest first (at most `limit`: the rest on the next read)."""
    with store.session() as s:
        rows = s.exec(
            select(Event).where(Event.run_id == run_id, Event.id > after_id).order_by(Event.id).limit(limit)
        ).all()
    return [_stored(e) for e in rows]


def recent_events(store: Store, run_id: str, limit: int = 50) -> list[StoredEvent]:
    """A run's newest event rows, oldest of them first."""
    with store.session() as s:
        rows = s.exec(select(Event).where(Event.run_id == run_id).order_by(Event.id.desc()).limit(limit)).all()
    return [_stored(e) for e in reversed(rows)]


def _stored(e: Event) -> StoredEvent:
    payload = dict(e.payload or {})
    return StoredEvent(e.id, e.kind, payload.get("transcript_id"), payload, e.created_at)


def judging_counts(store: Store, run_id: str) -> dict[str, int]:
    """Verdicts stored so far by the judging in progress of each transcript of the run being judged now."""
    with store.session() as s:
        judged = s.exec(
            select(Transcript.id, Transcript.meta).where(
                Transcript.run_id == run_id, Transcript.status == TranscriptStatus.ASSESSING
            )
        ).all()
        if not judged:
            return {}
        stage = {tid: "after_fixup" if (meta or {}).get("rubric_fixups") else "initial" for tid, meta in judged}
        rows = s.exec(
            select(WindowAnswer.transcript_id, WindowAnswer.stage, func.count())
            .where(WindowAnswer.transcript_id.in_(list(stage)))
            .group_by(WindowAnswer.transcript_id, WindowAnswer.stage)
        ).all()
    counts = dict.fromkeys(stage, 0)
    for tid, at_stage, count in rows:
        if stage[tid] == at_stage:
            counts[tid] = count
    return counts
