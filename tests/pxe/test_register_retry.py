"""Registration's write retries: transient database errors are retried, others are not."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from common import runner
from pxe.db.models import Pool
from pxe.db.session import Database
from pxe.db.write_retry import ATTEMPTS, write_with_retries
from pxe.store.pools import create_pool


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'inventory.sqlite3'}")
    db.migrate()
    yield db
    db.dispose()


def _error(message: str) -> OperationalError:
    return OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))


def test_a_locked_database_is_retried_and_the_work_committed(database: Database) -> None:
    calls = []

    def work(session: Session) -> str:
        calls.append(1)
        create_pool(session, "rack1")
        if len(calls) < 3:
            raise _error("database is locked")
        return "done"

    assert write_with_retries(database, work) == "done"
    assert len(calls) == 3
    with database.scope(write=False) as session:
        # The two failed attempts were rolled back: one row, not three.
        assert session.scalar(select(func.count()).select_from(Pool)) == 1


def test_other_errors_and_endless_locks_are_raised(database: Database) -> None:
    calls = []

    def broken(session: Session) -> None:
        calls.append(1)
        raise _error("no such table: nothing")

    with pytest.raises(OperationalError, match="no such table"):
        write_with_retries(database, broken)
    assert len(calls) == 1

    def locked(session: Session) -> None:
        calls.append(1)
        raise _error("database is locked")

    with pytest.raises(OperationalError, match="locked"):
        write_with_retries(database, locked)
    assert len(calls) == 1 + ATTEMPTS


_OTHER_PROCESS_WRITER = """
import sys
from pxe.db.session import Database
from pxe.store.pools import create_pool
from pxe.db.write_retry import write_with_retries
database = Database(sys.argv[1])
with database.engine.connect() as conn:  # SQLite's own busy handler would give up at once
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
write_with_retries(database, lambda session: create_pool(session, "from-another-process"))
"""


def test_writers_of_other_processes_queue_behind_this_one(database: Database) -> None:
    """Another process's writer waits for this process's write to end, for as long as it takes
    (here longer than all its retries), instead of failing on SQLite's lock."""
    with database.writer_turn(), database.scope(write=True) as session:
        create_pool(session, "rack1")
        session.flush()  # this transaction now holds SQLite's write lock
        other = runner.start(
            [sys.executable, "-c", _OTHER_PROCESS_WRITER, database.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(4)  # longer than the other writer's ATTEMPTS retries with their back-off
        assert other.poll() is None, other.communicate()
    _, err = other.communicate(timeout=60)
    assert other.returncode == 0, err.decode()
    with database.scope(write=False) as session:
        names = session.scalars(select(Pool.name).order_by(Pool.name)).all()
    assert names == ["from-another-process", "rack1"]


def _open_files(name: str) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.basename(_target(fd)) == name)


def _target(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed since it was listed
        return ""


def test_a_disposed_database_closes_its_writers_lock_file(database: Database) -> None:
    """A process that opens many databases in turn (the test suite, a tool going through data
    directories) must not keep a lock file open for each: it ran out of descriptors."""
    write_with_retries(database, lambda session: create_pool(session, "rack1"))
    assert _open_files("inventory.sqlite3.writers") == 1
    database.dispose()
    assert _open_files("inventory.sqlite3.writers") == 0
    write_with_retries(database, lambda session: create_pool(session, "rack2"))  # opened again
    assert _open_files("inventory.sqlite3.writers") == 1
