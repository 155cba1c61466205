"""runs lease: one owner per run (and later per transcript), with heartbeat and expiry.

Revision 0003_runs_lease, after 0002_steps_unique_keys. See `state.leases`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_runs_lease"
down_revision = "0002_steps_unique_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    with op.batch_alter_table("lease", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lease_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lease_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lease", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lease_run_id"))
        batch_op.drop_index(batch_op.f("ix_lease_expires_at"))
    op.drop_table("lease")
