"""Migrations from an empty database give exactly the models' schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pxe.db.migrate import downgrade, upgrade
from pxe.db.models import Base
from pxe.db.session import Database

TABLES = {"hosts", "host_macs", "profiles", "selectors", "pools", "events", "api_tokens"}


def _assert_matches_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() is not None


def test_migrations_from_empty_match_models(any_database: Database) -> None:
    # any_database is already migrated once; a second run must be a no-op.
    upgrade(any_database.engine)
    assert set(inspect(any_database.engine).get_table_names()) >= TABLES
    _assert_matches_models(any_database)


def test_downgrade_to_empty_and_back(any_database: Database) -> None:
    downgrade(any_database.engine, "base")
    assert not TABLES & set(inspect(any_database.engine).get_table_names())
    upgrade(any_database.engine)
    _assert_matches_models(any_database)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(database: Database) -> None:
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
