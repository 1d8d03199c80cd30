"""Installer reports carry a sequence number: the host keeps the highest one of its install
cycle, each event the number of the report that made it, so a retried report is recorded once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("report_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("report_seq")
