"""Run the Alembic migrations in ``pxe/migrations`` against an engine, without an alembic.ini.

The server migrates on every start, so an empty data directory becomes a working inventory and
an old one is brought up to date before the first request.

Several servers sharing one PostgreSQL start (and so migrate) at once: each migration runs under
one transaction-scoped advisory lock, so one server migrates and the others, let in after its
commit, find the schema at head. Without it the second ``CREATE TABLE`` failed on the catalog's
unique index and that server exited.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The advisory lock key of migrations on PostgreSQL (any constant every server agrees on).
_MIGRATION_LOCK = 0x7870_6D69


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _one_migrator(conn: Connection) -> None:
    """Wait here until no other server migrates this database (released at commit)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as conn:
        _one_migrator(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        _one_migrator(conn)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
