"""The hosts' state index also carries the install token, so the install slots taken are counted
from the index alone: a boot request counts them, and a reinstall of many hosts made each count
look up every ready host's row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_hosts_state_token", "hosts", ["state", "install_token_hash"])
    op.drop_index("ix_hosts_state", table_name="hosts")


def downgrade() -> None:
    op.create_index("ix_hosts_state", "hosts", ["state"])
    op.drop_index("ix_hosts_state_token", table_name="hosts")
