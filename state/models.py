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

SCHEMA_VERSION = 1


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
    status: str = Field(default="generating", index=True)
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


class Fixup(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    exchange_number: int
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
    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True)
    stage: str  # artifact | assessment | fixup | review
    action: str  # rejected | truncated
    reason_kind: str  # artifact | criterion | safety_gate | too_short | unfixable | human
    reason: str
    detail: str = _text()
    kept_exchanges: int | None = None
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
