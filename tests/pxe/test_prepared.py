"""A prepared read gives the rows SQLAlchemy's own execution gives, types included (JSON,
timezone-aware dates, booleans), on both backends, and leaves no transaction open; a prepared
write is committed, counts the rows it changed, and fails as SQLAlchemy's statements fail.
Several of them in one transaction are committed together or not at all."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from pxe.db.models import Host, HostMac, Profile
from pxe.db.prepared import PreparedRead, PreparedWrite, transaction
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
# A conditional write, as a token claim is: a date bound (text on SQLite), a JSON value and
# an increment of the row's own column.
WRITE = PreparedWrite(
    update(Host)
    .where(Host.hostname == bindparam("name"), Host.token_bound_addr.is_(None))
    .values(token_bound_addr=bindparam("address"), token_claimed_at=bindparam("at"),
            install_attempts=Host.install_attempts + 1, facts=bindparam("facts"),
            updated_at=bindparam("at"))
)  # fmt: skip


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
    # updated_at's onupdate is computed by SQLAlchemy's execution, which a prepared write skips.
    stale = PreparedWrite(update(Host).where(Host.id == 1).values(hostname=bindparam("name")))
    with pytest.raises(ValueError, match=r"columns \['updated_at'\] take a Python default"):
        stale.run(database.engine, name="node-x")


def test_a_write_is_committed_and_counts_the_rows_it_changed(any_database: Database) -> None:
    _inventory(any_database)
    at = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)
    values = {"name": "node-2", "address": "192.0.2.7", "at": at, "facts": {"cpus": 4}}
    assert WRITE.run(any_database.engine, **values) == 1
    assert WRITE.run(any_database.engine, **values) == 0  # bound now: the condition holds no more
    assert WRITE.run(any_database.engine, **{**values, "name": "absent"}) == 0
    fresh = Database(any_database.url)  # another pool: it sees only what was committed
    try:
        with fresh.scope(write=False) as s:
            host = s.scalars(select(Host).where(Host.hostname == "node-2")).one()
            assert (host.token_bound_addr, host.token_claimed_at) == ("192.0.2.7", at)
            assert (host.install_attempts, host.facts) == (1, {"cpus": 4})
            others = s.scalars(select(Host).where(Host.hostname != "node-2")).all()
            assert all(h.token_bound_addr is None for h in others)
    finally:
        fresh.dispose()


def test_a_write_commits_where_the_driver_opens_transactions_itself(tmp_path: Path) -> None:
    """Our SQLite engines leave BEGIN to SQLAlchemy; a plain one lets pysqlite begin before the
    UPDATE, and the write must still be committed when the connection goes back."""
    url = f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    Database(url).migrate()
    engine = create_engine(url)
    try:
        with Database(url).scope() as s:
            hosts.add_host(s, macs=["52:54:00:dd:01:01"], hostname="node-p")
        at = datetime.now(UTC)
        assert WRITE.run(engine, name="node-p", address="192.0.2.8", at=at, facts={}) == 1
        with sqlite3.connect(tmp_path / "plain.sqlite3") as reader:
            bound = reader.execute("SELECT token_bound_addr FROM hosts").fetchone()
        assert bound == ("192.0.2.8",)
    finally:
        engine.dispose()


def test_a_busy_database_fails_as_sqlalchemy_fails_so_writes_are_retried(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    url = f"sqlite:///{path}"
    Database(url).migrate()
    engine = create_engine(url, connect_args={"timeout": 0.05})
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked") as caught:
            WRITE.run(engine, name="x", address="192.0.2.9", at=datetime.now(UTC), facts={})
        assert isinstance(caught.value.orig, sqlite3.OperationalError)
        assert engine.pool.checkedout() == 0
    finally:
        holder.close()
        engine.dispose()


ADD_MAC = PreparedWrite(
    insert(HostMac).values(host_id=bindparam("owner"), mac=bindparam("new_mac"))
)
NAMES = PreparedRead(select(Host.hostname).where(Host.token_bound_addr.is_not(None)))


def _bound(database: Database) -> list[str]:
    return [row.hostname for row in NAMES.rows(database.engine)]


def test_a_transaction_commits_its_statements_together_or_none(any_database: Database) -> None:
    _inventory(any_database)
    at = datetime.now(UTC)
    # The driver's error, as SQLAlchemy raises it.
    with pytest.raises(IntegrityError), transaction(any_database.engine, write=True) as tx:
        assert tx.run(WRITE, name="node-3", address="192.0.2.3", at=at, facts={}) == 1
        assert [row.hostname for row in tx.rows(NAMES)] == ["node-3"]  # its own write
        tx.run(ADD_MAC, owner=1, new_mac="52:54:00:dd:00:00")  # node-0's MAC
    assert _bound(any_database) == []
    with transaction(any_database.engine, write=True) as tx:
        tx.run(WRITE, name="node-3", address="192.0.2.3", at=at, facts={})
        for i in (1, 2):
            tx.run(ADD_MAC, owner=4, new_mac=f"52:54:00:dd:01:0{i}")
    assert _bound(any_database) == ["node-3"]
    with any_database.scope(write=False) as s:
        assert s.scalar(select(HostMac.host_id).where(HostMac.mac == "52:54:00:dd:01:02")) == 4


def test_only_a_writers_transaction_takes_sqlites_write_lock(database: Database) -> None:
    """A registration reads in one transaction and writes in another: the reads must leave
    other writers free, and the write must hold the lock from its first statement."""
    path = database.engine.url.database
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with transaction(database.engine, write=False) as tx:
            tx.rows(NAMES)
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        with transaction(database.engine, write=True), pytest.raises(sqlite3.OperationalError,
                                                                     match="locked"):
            other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
