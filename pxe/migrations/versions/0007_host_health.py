"""Installed hosts report their health (software RAID) with a credential of their own.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "host_health",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("raid_state", sa.String(length=16), nullable=True),
        sa.Column("raid", sa.JSON(), nullable=False),
        sa.Column("reported_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_health_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_host_health")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_host_health_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("host_health")
