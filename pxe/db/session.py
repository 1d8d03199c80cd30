"""Engines and sessions for the inventory, SQLite (WAL) by default, PostgreSQL by URL.

SQLite serialises writers; a transaction that reads and then writes can lose the race for the
write lock and fail at once instead of waiting. So a unit of work that will write asks for
:meth:`Database.scope` with ``write=True``, which begins ``IMMEDIATE`` on SQLite (take the lock
first, then read) and is an ordinary transaction on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pxe.config import Settings
from pxe.db.migrate import upgrade
from pxe.db.writer_queue import WriterQueue

_BEGIN_OPTION = "xcp_sqlite_begin"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is always DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # each statement is its own transaction (pxe.db.write_retry.write_alone)
        conn.exec_driver_sql(f"BEGIN {options.get(_BEGIN_OPTION, 'DEFERRED')}")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=32,
            max_overflow=32,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


class Database:
    """One engine and its session factories; share one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        # Transactions that will write: on SQLite they take the write lock at BEGIN.
        self.write_engine = (
            self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            if self.is_sqlite
            else self.engine
        )
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._writers = WriterQueue(self._sqlite_file()) if self.is_sqlite else None

    def _sqlite_file(self) -> str | None:
        path = self.engine.url.database
        return path if path and path != ":memory:" else None

    def writer_turn(self) -> AbstractContextManager[None]:
        """Wait for this writer's turn (SQLite: :mod:`pxe.db.writer_queue`; PostgreSQL lets
        writers in side by side, so there it is at once)."""
        return self._writers.turn() if self._writers is not None else nullcontext()

    def session(self, *, write: bool = False) -> Session:
        """A new session; the caller commits and closes it."""
        return (self._writer if write else self._reader)()

    @contextmanager
    def scope(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back when it raises."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The process-wide :class:`Database` for these settings, migrated to the latest schema."""
    url = settings.database
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = Database(url)
            if migrate:
                db.migrate()
            _databases[url] = db
        return db


def close_databases() -> None:
    """Dispose every cached engine (tests and shutdown)."""
    with _databases_lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()


@contextmanager
def session_scope(settings: Settings, *, write: bool = True) -> Iterator[Session]:
    """``with session_scope(settings) as session:`` for code outside a request (CLI, services)."""
    with open_database(settings).scope(write=write) as session:
        yield session
