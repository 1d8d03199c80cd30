"""A throwaway PostgreSQL 15 cluster for the inventory tests on PostgreSQL.

initdb into a fresh directory, pg_ctl on a free loopback port (socket in the same directory, so
the system's cluster is never touched), a new database per test, and the whole cluster stopped
and deleted at teardown. PostgreSQL refuses to run as root, so as root every command runs as
the ``postgres`` user (``runuser``), which owns the directory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

from common import runner

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass(frozen=True)
class PostgresCluster:
    directory: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database's SQLAlchemy URL."""
        name = f"xcp_test_{os.getpid()}_{next(_names)}"
        engine = sqlalchemy.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def _options(directory: Path, port: int) -> str:
    return (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    directory = Path(tempfile.mkdtemp(prefix="xcp-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
    data = directory / "data"
    port = _free_port()
    started = False
    try:
        initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        runner.run(_as_postgres([*initdb, "-E", "UTF8", "--no-sync"]), timeout=120)
        options = _options(directory, port)
        log_file = str(directory / "server.log")
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", log_file]
        runner.run(_as_postgres([*pg_ctl, "-w", "-t", "60", "start"]), timeout=90)
        started = True
        yield PostgresCluster(directory, port)
    finally:
        if started:
            runner.run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                check=False,
                timeout=60,
            )
        shutil.rmtree(directory, ignore_errors=True)


def restart(cluster: PostgresCluster, mode: str = "fast", down_seconds: float = 0.0) -> None:
    """Stop the cluster and start it again in place (same port, data and options) after
    ``down_seconds``, as an operator, a crash or a failover would: ``fast`` ends every session
    with admin_shutdown, ``immediate`` as a crash. The log goes on in the same file, which also
    keeps the new server off our pipes."""
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(cluster.directory / "data")]
    runner.run(_as_postgres([*pg_ctl, "-m", mode, "-w", "-t", "60", "stop"]), timeout=90)
    time.sleep(down_seconds)
    options = _options(cluster.directory, cluster.port)
    log_file = str(cluster.directory / "server.log")
    runner.run(_as_postgres([*pg_ctl, "-o", options, "-l", log_file, "-w", "-t", "60", "start"]),
               timeout=90)  # fmt: skip

