"""Step keys: every pipeline step is stored once, and judge verdicts are stored as they arrive.

- `windowanswer`: one judge's verdict on one criterion over one window of
  exchanges, keyed by (transcript, stage, judge, window, criterion).
- `assessment` is unique per (transcript, stage); `rejection` per
  (transcript, stage, exchanges kept); `fixup` gets a `step` column naming
  the attempt (`artifact:trim`, `artifact:rewrite`, `criterion:<id>`) and is
  unique per (transcript, exchange, step).

Rows a replay duplicated before these keys existed are kept, with the key of
each extra copy marked `#<id>`: the copy the pipeline acted on keeps the
plain key (the newest assessment, which set the status; the first rejection,
which holds what a cut removed), so nothing is deleted.

Revision 0002_steps_unique_keys, after 0001_store_baseline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_steps_unique_keys"
down_revision = "0001_store_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "windowanswer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("judge", sa.String(), nullable=False),
        sa.Column("first_exchange", sa.Integer(), nullable=False),
        sa.Column("last_exchange", sa.Integer(), nullable=False),
        sa.Column("criterion", sa.String(), nullable=False),
        sa.Column("answer", sa.String(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "transcript_id",
            "stage",
            "judge",
            "first_exchange",
            "last_exchange",
            "criterion",
            name="uq_windowanswer_step",
        ),
    )
    with op.batch_alter_table("windowanswer", schema=None) as batch_op:
        batch_op.create_index("ix_windowanswer_transcript_id", ["transcript_id"], unique=False)

    # Duplicated steps from before the keys: mark every copy but the one the pipeline acted on.
    op.execute(
        "UPDATE assessment SET stage = stage || '#' || CAST(id AS VARCHAR) "
        "WHERE id NOT IN (SELECT MAX(id) FROM assessment GROUP BY transcript_id, stage)"
    )
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_assessment_step", ["transcript_id", "stage"])

    with op.batch_alter_table("fixup", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.String(), nullable=False, server_default=""))
    # A rubric fixup's step is its criterion, as the curator names it now; older artifact fixups
    # (and repeats) get a step no new attempt will name.
    op.execute(
        "UPDATE fixup SET step = reason_kind || ':' || reason WHERE reason_kind = 'criterion' AND id IN "
        "(SELECT MIN(id) FROM fixup WHERE reason_kind = 'criterion' GROUP BY transcript_id, exchange_number, reason)"
    )
    op.execute("UPDATE fixup SET step = reason_kind || ':' || reason || '#' || CAST(id AS VARCHAR) WHERE step = ''")
    with op.batch_alter_table("fixup", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_fixup_step", ["transcript_id", "exchange_number", "step"])

    op.execute(
        "UPDATE rejection SET stage = stage || '#' || CAST(id AS VARCHAR) "
        "WHERE kept_exchanges IS NOT NULL AND id NOT IN "
        "(SELECT MIN(id) FROM rejection WHERE kept_exchanges IS NOT NULL GROUP BY transcript_id, stage, kept_exchanges)"
    )
    with op.batch_alter_table("rejection", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_rejection_step", ["transcript_id", "stage", "kept_exchanges"])


def downgrade() -> None:
    with op.batch_alter_table("rejection", schema=None) as batch_op:
        batch_op.drop_constraint("uq_rejection_step", type_="unique")
    with op.batch_alter_table("fixup", schema=None) as batch_op:
        batch_op.drop_constraint("uq_fixup_step", type_="unique")
        batch_op.drop_column("step")
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_constraint("uq_assessment_step", type_="unique")
    op.drop_table("windowanswer")
