"""The tables: everything the pipeline knows lives in these rows.

Actors pass ids in messages and read and write these rows; nothing of value
lives only in memory, so a killed run resumes from the database. Free-form
structures (a persona, category scores, a config snapshot) are JSON columns;
everything that is filtered or joined on is a real column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .migrations import SCHEMA_VERSION  # noqa: F401 - the newest revision's number; a schema change needs one
from .status import TranscriptStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json(**kwargs: Any) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False), **kwargs)


def _text(default: str | None = "") -> Any:
    return Field(default=default, sa_column=Column(Text, nullable=default is None))


class Meta(SQLModel, table=True):
    """Key/value facts about the store itself (the schema version above all)."""

    key: str = Field(primary_key=True)
    value: str


class Run(SQLModel, table=True):
    id: str = Field(primary_key=True)
    kind: str = Field(default="generate", index=True)  # generate | eval | train
    status: str = Field(default="created", index=True)
    domain: str = ""
    seed: int | None = None
    config: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Persona(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str | None = Field(default=None, foreign_key="run.id", index=True)
    seed: int | None = None
    purpose: str = Field(default="train", index=True)  # train | eval | imported
    data: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)


class Transcript(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str | None = Field(default=None, foreign_key="run.id", index=True)
    persona_id: str | None = Field(default=None, foreign_key="persona.id", index=True)
    status: str = Field(default=TranscriptStatus.PLANNED, index=True)  # state.status: the moves it may make
    source: str = Field(default="generated")  # generated | imported
    target_exchanges: int | None = None
    model: str | None = None
    content_hash: str = ""
    meta: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Exchange(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("transcript_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    number: int
    user: str = _text()
    assistant: str = _text()
    created_at: datetime = Field(default_factory=utcnow)


class Assessment(SQLModel, table=True):
    """One judging of a transcript with a verdict, stored once its every answer is in.

    A transcript is judged once per stage (see `state.steps`); a judging that
    got no verdict on a safety criterion is not stored here, only its answers.
    """

    __table_args__ = (UniqueConstraint("transcript_id", "stage", name="uq_assessment_step"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    stage: str = "initial"  # initial | after_fixup | imported
    exchange_count: int | None = None
    rubric_version: int = 1
    score: float
    passed: bool
    safety_gate_failed: bool
    category_scores: dict = _json()
    failed_checks: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class CriterionAnswer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("assessment_id", "criterion", "judge"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id", index=True)
    criterion: str
    answer: str  # YES | NO | NA | ERROR
    reasoning: str = _text()
    judge: str = ""  # backend/model that answered


class WindowAnswer(SQLModel, table=True):
    """One judge's verdict on one criterion over one window of exchanges: the unit of judging.

    Stored the moment it arrives, before the assessment it belongs to is
    complete, so a kill during assessment loses only the calls in flight and
    the resumed assessor asks only for what is missing. Only verdicts are kept
    (YES, NO, NA): a failed or unparsable call is asked again.
    """

    __table_args__ = (
        UniqueConstraint(
            "transcript_id",
            "stage",
            "judge",
            "first_exchange",
            "last_exchange",
            "criterion",
            name="uq_windowanswer_step",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    stage: str = "initial"  # the assessment it belongs to: initial | after_fixup
    judge: str  # the judge backend's name in the run config
    first_exchange: int
    last_exchange: int
    criterion: str
    answer: str  # YES | NO | NA
    reasoning: str = _text()
    answered_by: str = ""  # backend/model that answered
    created_at: datetime = Field(default_factory=utcnow)


class Fixup(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("transcript_id", "exchange_number", "step", name="uq_fixup_step"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    exchange_number: int
    step: str = ""  # which attempt: artifact:trim | artifact:rewrite | criterion:<id>
    reason_kind: str  # artifact | criterion
    reason: str  # artifact kind or criterion id
    reasoning: str = _text()
    original: str = _text()
    proposed: str | None = _text(None)  # None when the fixup role answered UNFIXABLE
    entailment_ok: bool | None = None
    entailment_reasoning: str = _text()
    decision: str = Field(default="pending", index=True)  # pending | accepted | rejected | unfixable
    decided_by: str = ""  # auto | human
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None


class Rejection(SQLModel, table=True):
    # Each stage cuts or rejects a transcript once; review cuts shrink it every time, so the
    # exchanges kept tell its cuts apart.
    __table_args__ = (UniqueConstraint("transcript_id", "stage", "kept_exchanges", name="uq_rejection_step"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    stage: str  # artifact | assessment | fixup | review
    action: str  # rejected | truncated
    reason_kind: str  # artifact | criterion | safety_gate | too_short | unfixable | human
    reason: str
    detail: str = _text()
    kept_exchanges: int | None = None  # what the transcript holds after this record; set on every new row
    created_at: datetime = Field(default_factory=utcnow)


class TrainingExample(SQLModel, table=True):
    """One slice: exchanges start..end of a transcript, ending on the reply to predict.

    The messages themselves are in the JSONL file and rebuildable from the
    exchanges; storing every history again would grow with the square of the
    transcript length.
    """

    __table_args__ = (UniqueConstraint("transcript_id", "end_exchange", "tokenizer"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    start_exchange: int = 1
    end_exchange: int
    tokenizer: str
    token_count: int
    created_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, index=True)
    kind: str = Field(index=True)
    payload: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """Who works on what, for how long: one row per scope, held by one process at a time.

    `scope` names what is held — `run:<id>` for a whole run today, `transcript:<id>` when several
    workers share a run — and is the primary key, so two takers cannot both insert it. A lease
    whose `expires_at` has passed may be taken over (see `state.leases`).
    """

    scope: str = Field(primary_key=True)
    run_id: str | None = Field(default=None, index=True)
    owner: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime = Field(index=True)
