"""The install watchdog: an install whose installer went silent fails, even if the host never
asks the server again.

An install has begun once its token is used (:mod:`pxe.boot.decide`). If neither that first use
nor any event of the host is more recent than ``install_timeout``, the host moves to failed
with that reason; its next network boot retries it (up to ``max_install_attempts``). A token
handed out and never used for as long is withdrawn, so the host's install slot
(``max_concurrent_installs``) is free for another; its next boot gets a new one.

``serve`` runs :class:`InstallWatchdog`, a thread checking every ``watchdog_interval`` seconds.
Each move is a conditional UPDATE of a host still as it was read, so several servers sharing
the inventory, or a report arriving meanwhile, never fail a host twice or fail a live one.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, exists, insert, or_, select, update

from pxe.config import Settings
from pxe.db.models import Event, Host, utcnow
from pxe.db.session import Database
from pxe.db.write_retry import write_alone, write_statements
from pxe.store.lifecycle import State

log = logging.getLogger(__name__)


def _duration(timeout: timedelta) -> str:
    seconds = int(timeout.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def fail_stalled_installs(database: Database, timeout: timedelta) -> int:
    """Fail every install silent for ``timeout``, withdraw every token unused for as long;
    returns how many installs failed."""
    now = utcnow()
    cutoff = now - timeout
    recent = exists().where(Event.host_id == Host.id, Event.time > cutoff)
    begun = or_(
        Host.state == State.INSTALLING.value,
        and_(Host.state == State.READY.value, Host.token_claimed_at.is_not(None)),
    )
    silent = select(Host.id, Host.hostname, Host.state, Host.updated_at).where(
        begun,
        or_(Host.token_claimed_at.is_(None), Host.token_claimed_at < cutoff),
        ~recent,
    )
    unused = select(Host.id, Host.updated_at).where(
        Host.state == State.READY.value,
        Host.install_token_hash.is_not(None),
        Host.token_claimed_at.is_(None),
        Host.updated_at < cutoff,
        ~recent,
    )
    with database.engine.connect() as connection:
        stalled = connection.execute(silent).all()
        stale_tokens = connection.execute(unused).all()
    reason = f"install timed out: no word from its installer for {_duration(timeout)}"
    failed = sum(_fail(database, row.id, row.updated_at, reason) for row in stalled)
    for row in stale_tokens:
        write_alone(database, update(Host)
                    .where(Host.id == row.id, Host.updated_at == row.updated_at)
                    .values(install_token_hash=None, updated_at=utcnow()))  # fmt: skip
    for row in stalled:
        log.warning("host %s: %s", row.hostname or row.id, reason)
    return failed


def _fail(database: Database, host_id: int, seen: datetime, reason: str) -> bool:
    def write(connection: Connection) -> bool:
        now = utcnow()
        moved = connection.execute(
            update(Host)
            .where(Host.id == host_id, Host.updated_at == seen,
                   Host.state.in_([State.READY.value, State.INSTALLING.value]))
            .values(state=State.FAILED.value, state_reason=reason, updated_at=now)
        ).rowcount  # fmt: skip
        if moved:
            event = {"host_id": host_id, "time": now, "kind": "failed", "step": "",
                     "percent": None, "message": reason}  # fmt: skip
            connection.execute(insert(Event), event)
        return bool(moved)

    return write_statements(database, write)


class InstallWatchdog:
    """:func:`fail_stalled_installs` every ``watchdog_interval`` seconds, in a thread."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self._timeout = timedelta(seconds=settings.install_timeout)
        self._interval = max(1, settings.watchdog_interval)
        self._database = database
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="install-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                fail_stalled_installs(self._database, self._timeout)
            except Exception:  # a database hiccup must not end the watchdog
                log.exception("the install watchdog's check failed; trying again")
