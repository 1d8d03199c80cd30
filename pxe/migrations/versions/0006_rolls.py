"""Rolling reinstalls: a roll, its hosts and its history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rolls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pool", sa.String(length=128), nullable=False),
        sa.Column("profile", sa.String(length=128), nullable=False),
        sa.Column("power", sa.Boolean(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("continue_on_failure", sa.Boolean(), nullable=False),
        sa.Column("host_timeout", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=160), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("driver", sa.String(length=128), nullable=True),
        sa.Column("lease_until", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rolls")),
    )
    op.create_index(op.f("ix_rolls_status"), "rolls", ["status"], unique=False)
    op.create_table(
        "roll_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("roll_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_roll_hosts_host_id_hosts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["roll_id"],
            ["rolls.id"],
            name=op.f("fk_roll_hosts_roll_id_rolls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_hosts")),
    )
    op.create_index(op.f("ix_roll_hosts_roll_id"), "roll_hosts", ["roll_id"], unique=False)
    op.create_table(
        "roll_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("roll_id", sa.Integer(), nullable=False),
        sa.Column("time", UTC_DATETIME, nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_roll_steps_host_id_hosts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["roll_id"],
            ["rolls.id"],
            name=op.f("fk_roll_steps_roll_id_rolls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_steps")),
    )
    op.create_index(op.f("ix_roll_steps_roll_id"), "roll_steps", ["roll_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_roll_steps_roll_id"), table_name="roll_steps")
    op.drop_table("roll_steps")
    op.drop_index(op.f("ix_roll_hosts_roll_id"), table_name="roll_hosts")
    op.drop_table("roll_hosts")
    op.drop_index(op.f("ix_rolls_status"), table_name="rolls")
    op.drop_table("rolls")
