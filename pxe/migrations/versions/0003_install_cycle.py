"""The install cycle of a host: its token's first use and bound address, attempts, queueing;
events by kind and time (the dashboard's list of security events).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Hosts installing when this runs have no claim recorded; the boot decision treats an
    # installing host as claimed whatever this column says.
    with op.batch_alter_table("hosts") as batch_op:
        batch_op.add_column(sa.Column("token_claimed_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("token_bound_addr", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("install_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("queued_at", UTC_DATETIME, nullable=True))
    # A host that failed before this revision counted no attempts and would be reinstalled at
    # its next boot, which nobody asked for: it starts with the default allowance used up.
    op.execute("UPDATE hosts SET install_attempts = 3 WHERE state = 'failed'")
    op.create_index("ix_events_kind_time", "events", ["kind", "time"])


def downgrade() -> None:
    op.drop_index("ix_events_kind_time", table_name="events")
    with op.batch_alter_table("hosts") as batch_op:
        batch_op.drop_column("queued_at")
        batch_op.drop_column("install_attempts")
        batch_op.drop_column("token_bound_addr")
        batch_op.drop_column("token_claimed_at")
