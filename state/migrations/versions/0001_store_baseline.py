"""The schema of the last release before migrations (git 92f8823), exactly as its `create_all` made it.

A workspace from that release has these tables, `meta.schema_version` = 1 and
no `alembic_version` table; the store recognises it, stamps it with this
revision and upgrades it from here. Types are spelled in plain SQLAlchemy
(String, DateTime(timezone=True)), which is the DDL SQLModel's types emit, so
this file does not change when SQLModel does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_store_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_kind", "event", ["kind"], unique=False)
    op.create_index("ix_event_run_id", "event", ["run_id"], unique=False)
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_kind", "run", ["kind"], unique=False)
    op.create_index("ix_run_status", "run", ["status"], unique=False)
    op.create_table(
        "persona",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_persona_purpose", "persona", ["purpose"], unique=False)
    op.create_index("ix_persona_run_id", "persona", ["run_id"], unique=False)
    op.create_table(
        "transcript",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("persona_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("target_exchanges", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["persona_id"], ["persona.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transcript_persona_id", "transcript", ["persona_id"], unique=False)
    op.create_index("ix_transcript_run_id", "transcript", ["run_id"], unique=False)
    op.create_index("ix_transcript_status", "transcript", ["status"], unique=False)
    op.create_table(
        "assessment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("exchange_count", sa.Integer(), nullable=True),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("safety_gate_failed", sa.Boolean(), nullable=False),
        sa.Column("category_scores", sa.JSON(), nullable=False),
        sa.Column("failed_checks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_assessment_transcript_id", "assessment", ["transcript_id"], unique=False)
    op.create_table(
        "exchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("assistant", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transcript_id", "number"),
    )
    op.create_index("ix_exchange_transcript_id", "exchange", ["transcript_id"], unique=False)
    op.create_table(
        "fixup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("exchange_number", sa.Integer(), nullable=False),
        sa.Column("reason_kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.Column("proposed", sa.Text(), nullable=True),
        sa.Column("entailment_ok", sa.Boolean(), nullable=True),
        sa.Column("entailment_reasoning", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fixup_decision", "fixup", ["decision"], unique=False)
    op.create_index("ix_fixup_transcript_id", "fixup", ["transcript_id"], unique=False)
    op.create_table(
        "rejection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reason_kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("kept_exchanges", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rejection_transcript_id", "rejection", ["transcript_id"], unique=False)
    op.create_table(
        "trainingexample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("start_exchange", sa.Integer(), nullable=False),
        sa.Column("end_exchange", sa.Integer(), nullable=False),
        sa.Column("tokenizer", sa.String(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transcript_id", "end_exchange", "tokenizer"),
    )
    op.create_index("ix_trainingexample_transcript_id", "trainingexample", ["transcript_id"], unique=False)
    op.create_table(
        "criterionanswer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("criterion", sa.String(), nullable=False),
        sa.Column("answer", sa.String(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("judge", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assessment_id", "criterion", "judge"),
    )
    op.create_index("ix_criterionanswer_assessment_id", "criterionanswer", ["assessment_id"], unique=False)
    op.bulk_insert(
        sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String())),
        [{"key": "schema_version", "value": "1"}],
    )


def downgrade() -> None:
    op.drop_table("criterionanswer")
    op.drop_table("trainingexample")
    op.drop_table("rejection")
    op.drop_table("fixup")
    op.drop_table("exchange")
    op.drop_table("assessment")
    op.drop_table("transcript")
    op.drop_table("persona")
    op.drop_table("run")
    op.drop_table("meta")
    op.drop_table("event")
