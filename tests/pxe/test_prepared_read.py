"""A prepared read gives the rows SQLAlchemy's own execution gives, types included (JSON,
timezone-aware dates, booleans), on both backends, and leaves no transaction open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, create_engine, select, update

from pxe.db.models import Host, Profile
from pxe.db.prepared import PreparedRead
from pxe.db.session import Database
from pxe.store import hosts, profiles

# Binds a date (SQLite stores it as text: the bind processor must run) and a name, limits the
# rows (a bound parameter SQLAlchemy adds itself) and selects JSON, date and boolean columns.
STATEMENT = (
    select(Host.id.label("host_id"), Host.hostname, Host.facts, Host.created_at,
           Host.token_spent, Profile.name.label("profile_name"), Profile.variables)
    .outerjoin(Profile, Profile.id == Host.profile_id)
    .where(Host.created_at >= bindparam("since", type_=Host.created_at.type))
    .where(Host.hostname != bindparam("skip"))
    .order_by(Host.id)
    .limit(5)
)  # fmt: skip
READ = PreparedRead(STATEMENT)


def _inventory(database: Database) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", variables={"keymap": "fr", "n": [1, 2]})
        for i in range(7):
            hosts.add_host(s, macs=[f"52:54:00:dd:00:{i:02x}"], hostname=f"node-{i}",
                           profile="p" if i % 2 else None)  # fmt: skip
        s.execute(update(Host).where(Host.hostname == "node-1")
                  .values(facts={"cpus": 8}, token_spent=True))  # fmt: skip


def test_rows_are_those_sqlalchemy_gives(any_database: Database) -> None:
    _inventory(any_database)
    since = datetime.now(UTC) - timedelta(hours=1)
    with any_database.scope(write=False) as s:
        expected = s.execute(STATEMENT, {"since": since, "skip": "node-0"}).all()
    rows = READ.rows(any_database.engine, since=since, skip="node-0")
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert len(rows) == 5 and rows[0].hostname == "node-1"
    assert rows[0].facts == {"cpus": 8} and rows[0].token_spent is True
    assert rows[0].variables == {"keymap": "fr", "n": [1, 2]}
    assert rows[0].created_at.tzinfo is not None
    assert rows[1].profile_name is None and rows[1].variables is None
    assert READ.rows(any_database.engine, since=datetime.now(UTC) + timedelta(hours=1),
                     skip="") == []  # fmt: skip
    assert READ.first(any_database.engine, since=since, skip="node-0") == rows[0]


def test_the_connection_goes_back_to_the_pool_with_no_transaction(any_database: Database) -> None:
    """An open snapshot would hold PostgreSQL's locks and SQLite's WAL checkpoints."""
    _inventory(any_database)
    engine = create_engine(any_database.url, pool_size=1, max_overflow=0)
    try:
        READ.rows(engine, since=datetime(2000, 1, 1, tzinfo=UTC), skip="")
        assert engine.pool.checkedout() == 0
        with engine.connect() as connection:  # the pool's one connection, the read's
            if any_database.is_sqlite:
                assert not connection.connection.dbapi_connection.in_transaction
            else:
                waiting = connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
                ).scalar()
                assert waiting == 0
    finally:
        engine.dispose()


def test_statements_it_cannot_prepare_are_refused_with_the_reason(database: Database) -> None:
    unnamed = select(select(Host.id).where(Host.id == 1).scalar_subquery())
    with pytest.raises(ValueError, match="selected column 1 needs a label"):
        PreparedRead(unnamed)
    per_call = PreparedRead(select(Host.id).where(Host.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match=r"parameters \['ids'\] are rendered per call"):
        per_call.rows(database.engine, ids=[1, 2])
