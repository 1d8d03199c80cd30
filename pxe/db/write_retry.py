"""One write unit of work, retried when the database asks to try again.

A thousand hosts booting at once make every writer wait for the same lock; this module is where
that waiting is made cheap (SQLite) and where the rare abort is retried (both backends).

A database that went away (PostgreSQL restarted, a connection cut) is retried the same way: the
pool drops every connection of the old server at the first one found dead, checks each one it
hands out (``pool_pre_ping``, :mod:`pxe.db.session`), and a unit of work that met the outage runs
again whole, which each of them may (their writes are conditional or idempotent). An outage
longer than the retries is :func:`database_unavailable`, which the web layer answers with 503
and Retry-After: the caller tries again, and nothing it sent was half recorded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from pxe.db.prepared import PreparedWrite, Transaction, transaction
from pxe.db.session import Database

ATTEMPTS = 6
T = TypeVar("T")


def write_with_retries(database: Database, work: Callable[[Session], T]) -> T:
    """Run ``work`` in a write transaction, again when the database says "try again".

    SQLite's busy timeout covers almost every wait; this catches the rest (and PostgreSQL's
    deadlock or serialisation aborts), which a thousand hosts booting at once do provoke.
    """

    def attempt() -> T:
        with database.writer_turn(), database.scope(write=True) as session:
            return work(session)

    return retried(attempt)


def write_statements(database: Database, work: Callable[[Connection], T]) -> T:
    """:func:`write_with_retries` for a few Core statements on a connection, without a session:
    for writes that are rare or off the requests' path (boot paths recorded in the background,
    the watchdog, a refused request's security event), where the ORM's load, unit of work and
    flush are not worth their cost and compiling each statement once (:func:`write_transaction`)
    buys little."""

    def attempt() -> T:
        with database.writer_turn(), database.write_engine.begin() as connection:
            return work(connection)

    return retried(attempt)


def write_transaction(database: Database, work: Callable[[Transaction], T]) -> T:
    """:func:`write_statements` for prepared statements (:mod:`pxe.db.prepared`), for the
    writes a rack makes at once: a registration's, once it has decided on its reads, and the
    installers' reports (pxe.store.install_reports)."""

    def attempt() -> T:
        with transaction(database.engine, write=True, turn=database.writer_turn()) as prepared:
            return work(prepared)

    return retried(attempt)


def write_alone(database: Database, statement: Executable) -> int:
    """Run one writing statement as its own transaction; returns the rows it changed.

    For a write that is a single statement (a token stored with a compare-and-set UPDATE):
    it takes none of the queue below. On SQLite the write lock is then taken and released
    inside the statement's one C call, which runs without the interpreter lock, so a process
    busy with other requests cannot stretch the time the lock is held; a queued transaction
    waits for the interpreter at each of its statements while holding the lock, which let
    100 concurrent ready hosts through at ~250 a second. The rare collision waits in SQLite's
    busy handler for about a millisecond.
    """

    def attempt() -> int:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            return c.execute(statement).rowcount

    return retried(attempt)


def write_prepared(database: Database, statement: PreparedWrite, **values: Any) -> int:
    """:func:`write_alone` for a statement compiled once (:mod:`pxe.db.prepared`), for the
    write a cold answer file makes; returns the rows it changed."""
    return retried(lambda: statement.run(database.engine, **values))


def retried(attempt: Callable[[], T]) -> T:
    """``attempt()``, again after a short random pause while the database says "try again" or
    cannot answer, up to :data:`ATTEMPTS` times; also for reads that decide a write (a
    registration's), so a short outage is ridden out as the write would ride it out."""
    for tries in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except DBAPIError as exc:
            if tries == ATTEMPTS or not (_transient(exc) or database_unavailable(exc)):
                raise
            time.sleep(random.uniform(0.01, 0.05) * 2 ** (tries - 1))  # noqa: S311 (jitter)
    raise AssertionError("unreachable")


def _transient(exc: DBAPIError) -> bool:
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    text = str(exc.orig).lower()
    return sqlstate in ("40001", "40P01") or "locked" in text or "busy" in text


# PostgreSQL shutting down or starting (admin_shutdown, crash_shutdown, cannot_connect_now),
# and what retries may not have outlasted: serialization failures and deadlocks.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})


def database_unavailable(exc: BaseException) -> bool:
    """``exc`` says the database cannot answer now, not that the request is wrong: the
    server down or restarting, the connection lost, SQLite's lock or PostgreSQL's aborts
    outlasting the retries. Wrapped by SQLAlchemy or raw from the driver (prepared reads
    use the driver's cursor)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        wrapped = isinstance(exc, OperationalError | InterfaceError) and exc.orig is not None
        return wrapped and _driver_unavailable(exc.orig)
    return _driver_unavailable(exc)


def _driver_unavailable(error: BaseException) -> bool:
    """:func:`database_unavailable` for the driver's own exception."""
    # By the classes' names, to need neither driver here; psycopg raises subclasses
    # (AdminShutdown is an OperationalError).
    kinds = {cls.__name__ for cls in type(error).__mro__}
    if not kinds & {"OperationalError", "InterfaceError"}:
        return False
    driver = type(error).__module__.split(".")[0]
    if driver == "sqlite3":
        text = str(error).lower()
        return "locked" in text or "busy" in text
    if not driver.startswith("psycopg"):
        return False
    sqlstate = getattr(error, "sqlstate", None)
    # An InterfaceError is psycopg's "the connection is closed"; no SQLSTATE: no server
    # answered (refused, reset, closed while the query ran).
    return (
        "InterfaceError" in kinds
        or sqlstate is None
        or sqlstate.startswith("08")
        or sqlstate in _UNAVAILABLE_STATES
    )
