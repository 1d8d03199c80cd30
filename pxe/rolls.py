"""The roll driver: moves every running rolling reinstall along, N hosts at a time.

``serve`` runs one :class:`RollDriver`, a thread of its main process (HTTP worker processes
run none), which every ``interval`` seconds re-reads the rolls from the inventory and, for
each roll it holds the lease of:

- looks at each started host: done once it boots its own disk again (installed, registered,
  in-pool), failed when the host failed or took longer than the roll's ``host_timeout``;
- starts waiting hosts while fewer than ``max_parallel`` run, unless a host failed and the
  roll does not continue past failures;
- finishes the roll once nothing runs and nothing more will start.

Nothing lives only in memory: a restarted server resumes each roll from its rows. A host is
marked ``starting`` before its reinstall is asked for and ``running`` once it was; one found
``starting`` (the server stopped in between) is asked again, which is harmless: a reinstall
of a ready host only asks its BMC again. Leases make a roll advance in one process only, even
with several servers on one PostgreSQL inventory: another takes a roll over once the lease
of the first ran out (it is given back at once when ``serve`` stops).

Every step is a roll step, an event of the host it is about, and an audit row in the name of
whoever asked for the roll.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from pxe.bmc import service as bmc_service
from pxe.config import Settings
from pxe.db.models import Host, Roll, RollHost, utcnow
from pxe.db.session import Database
from pxe.db.write_retry import write_alone
from pxe.store import hosts as host_store
from pxe.store import rolls as store
from pxe.store.audit import record as record_audit
from pxe.store.errors import StoreError
from pxe.store.lifecycle import State
from pxe.store.rolls import HostStatus, RollStatus

log = logging.getLogger(__name__)

AUDIT_SOURCE = "roll-driver"
LEASE_SECONDS = 30


def driver_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(database: Database, roll_id: int, owner: str, lease_seconds: float) -> bool:
    """Take or renew the roll's lease; False when another live driver holds it."""
    now = utcnow()
    statement = (
        update(Roll)
        .where(
            Roll.id == roll_id,
            Roll.status == RollStatus.RUNNING.value,
            or_(Roll.driver.is_(None), Roll.driver == owner, Roll.lease_until < now),
        )
        .values(driver=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )
    return write_alone(database, statement) == 1


def release(database: Database, owner: str) -> None:
    """Give back every lease ``owner`` holds, so a restarted server resumes at once."""
    write_alone(
        database,
        update(Roll).where(Roll.driver == owner).values(driver=None, lease_until=None),
    )


def _audit(session: Session, roll: Roll, action: str, target: str, result: str = "ok") -> None:
    record_audit(
        session,
        actor=roll.requested_by,
        action=f"reinstalls.{action}",
        target=f"roll {roll.id}" + (f": {target}" if target else ""),
        source=AUDIT_SOURCE,
        result=result,
    )


def _watch(database: Database, roll_id: int) -> list[int]:
    """Settle the started hosts (done, failed, timed out); returns the waiting rows to start."""
    with database.scope(write=True) as session:
        roll = session.get(Roll, roll_id)
        if roll is None or roll.status != RollStatus.RUNNING.value:
            return []
        now = utcnow()
        timeout = timedelta(seconds=roll.host_timeout)
        for row in roll.hosts:
            if row.status != HostStatus.RUNNING.value:
                continue
            host = session.get(Host, row.host_id) if row.host_id is not None else None
            if host is None:
                _settle(
                    session,
                    roll,
                    row,
                    None,
                    status=HostStatus.FAILED,
                    why="removed from the inventory",
                )
            elif host.state in store.DONE_STATES:
                _settle(
                    session, roll, row, host, status=HostStatus.DONE, why=f"reached {host.state}"
                )
            elif host.state == State.FAILED:
                why = host.state_reason or "its install failed"
                _settle(session, roll, row, host, status=HostStatus.FAILED, why=f"failed: {why}")
            elif row.started_at is not None and now - row.started_at > timeout:
                _settle(session, roll, row, host, status=HostStatus.FAILED,
                        why=f"timed out: not installed {roll.host_timeout} s after it was started "
                        f"(it is {host.state})")  # fmt: skip
        failed = [r for r in roll.hosts if r.status == HostStatus.FAILED.value]
        active = [r for r in roll.hosts if r.status in store.ACTIVE]
        waiting = [r for r in roll.hosts if r.status == HostStatus.WAITING.value]
        stopping = bool(failed) and not roll.continue_on_failure
        # A row left "starting" by a server that stopped mid-call is started again.
        restart = [r.id for r in active if r.status == HostStatus.STARTING.value]
        if stopping or not waiting:
            if not active:
                _finish(session, roll, failed, waiting)
            return restart
        free = roll.max_parallel - len(active)
        chosen = waiting[: max(free, 0)]
        for row in chosen:
            row.status = HostStatus.STARTING.value
            row.started_at = now
        roll.updated_at = now
        return restart + [r.id for r in chosen]


def _settle(
    session: Session, roll: Roll, row: RollHost, host: Host | None, *, status: HostStatus, why: str
) -> None:
    row.status = status.value
    row.message = why
    row.finished_at = utcnow()
    roll.updated_at = row.finished_at
    step = "host-done" if status is HostStatus.DONE else "host-failed"
    store.add_step(session, roll, step, f"{row.hostname} {why}", host)
    _audit(session, roll, step, row.hostname, "ok" if status is HostStatus.DONE else why)
    (log.info if status is HostStatus.DONE else log.warning)(
        "roll %d: %s %s", roll.id, row.hostname, why
    )


def _finish(session: Session, roll: Roll, failed: list[RollHost], waiting: list[RollHost]) -> None:
    done = sum(1 for r in roll.hosts if r.status == HostStatus.DONE.value)
    if failed:
        roll.status = RollStatus.FAILED.value
        names = ", ".join(r.hostname for r in failed)
        roll.message = f"{done} done, {len(failed)} failed ({names})"
        if waiting:
            roll.message += (
                f"; stopped there, not started: {', '.join(r.hostname for r in waiting)}"
            )
    else:
        roll.status = RollStatus.DONE.value
        roll.message = f"all {done} host(s) reinstalled"
    roll.finished_at = utcnow()
    roll.updated_at = roll.finished_at
    roll.driver = None
    roll.lease_until = None
    store.add_step(session, roll, "finished", roll.message)
    _audit(session, roll, "finish", "", "ok" if not failed else roll.message)
    log.info("roll %d %s: %s", roll.id, roll.status, roll.message)


def _start(database: Database, settings: Settings, roll_id: int, row_id: int) -> None:
    """Ask for one host's reinstall (through its BMC when the roll says so)."""
    with database.scope(write=False) as session:
        roll = session.get(Roll, roll_id)
        row = session.get(RollHost, row_id)
        if roll is None or row is None or row.status != HostStatus.STARTING.value:
            return
        host_id, name, power = row.host_id, row.hostname, roll.power
        actor = f"{roll.requested_by} (roll {roll.id})"
    error: str | None = None
    if host_id is None:
        error = "removed from the inventory"
    elif power:
        try:
            bmc_service.reinstall_with_power(database, settings, host_id, actor)
        except StoreError as exc:  # BmcError included: the host is left as it was
            error = str(exc)
    else:
        try:
            with database.scope(write=True) as session:
                host = host_store.get_host(session, host_id)
                host_store.reinstall_host(session, host, reason=f"reinstall asked by {actor}")
        except StoreError as exc:
            error = str(exc)
    with database.scope(write=True) as session:
        roll = session.get(Roll, roll_id)
        row = session.get(RollHost, row_id)
        if roll is None or row is None:
            return
        host = session.get(Host, host_id) if host_id is not None else None
        if error is not None:
            _settle(
                session, roll, row, host, status=HostStatus.FAILED, why=f"could not start: {error}"
            )
            return
        row.status = HostStatus.RUNNING.value
        row.started_at = utcnow()
        how = (
            "power cycled through its BMC, next boot from the network"
            if power
            else ("ready; reinstalls at its next network boot")
        )
        store.add_step(session, roll, "host-started", f"{name} {how}", host)
        _audit(session, roll, "host-start", name)
        log.info("roll %d: %s started", roll_id, name)


def advance(database: Database, settings: Settings, roll_id: int) -> None:
    """One round for one roll (whose lease the caller holds): until nothing more can start
    now, so a host whose start failed makes room for the next, or ends the roll, at once."""
    started: set[int] = set()
    while True:
        rows = [row_id for row_id in _watch(database, roll_id) if row_id not in started]
        if not rows:
            return
        for row_id in rows:
            started.add(row_id)
            _start(database, settings, roll_id, row_id)


def tick(database: Database, settings: Settings, owner: str, lease_seconds: float) -> int:
    """One round over every running roll; returns how many this driver advanced."""
    with database.scope(write=False) as session:
        running = store.running_rolls(session)
    advanced = 0
    for roll_id, driver in running:
        if not claim(database, roll_id, owner, lease_seconds):
            continue
        if driver != owner:
            _note_driver(database, roll_id, owner)
        advance(database, settings, roll_id)
        advanced += 1
    return advanced


def _note_driver(database: Database, roll_id: int, owner: str) -> None:
    """A step when a process takes a roll over: the first driver, or one after a restart."""
    with database.scope(write=True) as session:
        roll = session.get(Roll, roll_id)
        if roll is None:
            return
        resumed = store.has_step(session, roll, "driver")
        message = ("resumed" if resumed else "driven") + f" by {owner}"
        store.add_step(session, roll, "driver", message)
        _audit(session, roll, "resume" if resumed else "drive", owner)


class RollDriver:
    """:func:`tick` every ``interval`` seconds in a thread of ``serve``'s main process."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        interval: float = 2.0,
        lease_seconds: float = LEASE_SECONDS,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.owner = owner or driver_name()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roll-driver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            release(self.database, self.owner)
        except Exception:
            log.exception("could not give back the roll leases of %s", self.owner)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                tick(self.database, self.settings, self.owner, self.lease_seconds)
            except Exception:  # a database hiccup must not end the driver
                log.exception("the roll driver's round failed; trying again")
