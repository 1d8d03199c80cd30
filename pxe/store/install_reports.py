"""What an installer reports with its install token (progress, failure, build-done), as
prepared statements (:mod:`pxe.db.prepared`).

A rack's installers report together, and each reports its progress a few dozen times. Through
the ORM, each report loaded the host with its relations, ran a unit of work and flushed (~0.85 ms
of CPU for an INSERT and at most one UPDATE) while holding the write lock: a hundred build-dones
took 0.2 s. Through SQLAlchemy's connection, without the ORM, the begin and each of the four or
five statements still cost a build-done half of its CPU. Here the token's host is read by a
prepared statement, and the write transaction, in the writers' queue, reads the host's state
under the write lock, moves it if the report does, and records the event.

Reports are idempotent. An installer numbers its reports 1, 2, 3... in each install cycle
(``seq``, :class:`installer.progress.HttpReporter`) and retries one whose answer it did not
get: the server may have recorded it and died before answering, or the answer was lost on the
way. The host keeps the highest number it recorded in the cycle (``report_seq``, forgotten when
a token is first used); a report numbered no higher is a replay, answered as the first try was
and recorded nothing. A report without a number (an older installer) is recorded as it comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, select, update

from pxe.db.models import Event, Host, utcnow
from pxe.db.prepared import PreparedRead, PreparedWrite, Transaction
from pxe.db.session import Database
from pxe.db.write_retry import write_transaction
from pxe.store.bmc import SEEN_FACT, BmcSeen
from pxe.store.errors import ConflictError, NotFoundError
from pxe.store.events import EVENT_COLUMNS
from pxe.store.hosts import AnswerFileHost
from pxe.store.lifecycle import State, check_transition
from pxe.store.security_events import WRONG_ADDRESS, SecurityRefusalError, record_security_event
from pxe.store.tokens import claim_install_token, hash_token

DONE_REASON = "build done"
FINISHED = frozenset({State.INSTALLED, State.REGISTERED, State.IN_POOL})

_HOLDER = PreparedRead(
    select(Host.id, Host.hostname, Host.token_spent, Host.token_bound_addr).where(
        Host.install_token_hash == bindparam("token_hash")
    )
)
_BOUND = PreparedRead(
    select(Host.token_bound_addr).where(
        Host.id == bindparam("host_id"), Host.install_token_hash == bindparam("token_hash")
    )
)
_THIS_HOST = Host.id == bindparam("host_id")
# FOR UPDATE on PostgreSQL; SQLite's write transactions hold the database's lock from BEGIN.
_STATE = PreparedRead(select(Host.state, Host.report_seq).where(_THIS_HOST).with_for_update())
_FACTS = PreparedRead(select(Host.facts).where(_THIS_HOST))


def _set(**values: Any) -> PreparedWrite:
    """An UPDATE of the host's row; it moves ``updated_at`` as every change of a host must."""
    return PreparedWrite(
        update(Host).where(_THIS_HOST).values(**values, updated_at=bindparam("now"))
    )


_MOVE = _set(state=bindparam("state"), state_reason=bindparam("reason"))
_SET_FACTS = _set(facts=bindparam("facts"))
_SEQ = _set(report_seq=bindparam("seq"))
# A build-done and a failure end the cycle's reports: each is one UPDATE of the host's row,
# which keeps the report's number, or the last one when the report has none.
_NUMBERED = func.coalesce(bindparam("seq", type_=Integer), Host.report_seq)
_DONE = _set(
    state=State.INSTALLED.value,
    state_reason=DONE_REASON,
    registration_key_hash=bindparam("key_hash"),
    report_seq=_NUMBERED,
)
_FAILED = _set(
    state=State.FAILED.value,
    state_reason=bindparam("reason"),
    failure_log=bindparam("log"),
    report_seq=_NUMBERED,
)
_EVENT = PreparedWrite(
    insert(Event).values(
        {name: bindparam(name, type_=getattr(Event, name).type) for name in (*EVENT_COLUMNS, "seq")}
    )
)


@dataclass(frozen=True)
class Reporter:
    """The host holding an install token."""

    id: int
    hostname: str | None
    token_spent: bool
    # The address the token is bound to (None: unused yet), and the token's hash.
    bound_addr: str | None = None
    token_hash: str = ""

    @property
    def who(self) -> str:
        return f"host {self.hostname or self.id}"


def token_holder(database: Database, token: str) -> Reporter | None:
    """The host holding install ``token`` (spent or not), or None."""
    if not token:
        return None
    digest = hash_token(token)
    row = _HOLDER.first(database.engine, token_hash=digest)
    if row is None:
        return None
    return Reporter(row.id, row.hostname, bool(row.token_spent), row.token_bound_addr, digest)


def use_install_token(
    database: Database, host: Reporter | AnswerFileHost, token_hash: str, address: str
) -> None:
    """Check a use of the host's install token from client ``address``, before it counts.

    The first use binds the token to ``address`` and counts an install attempt
    (:func:`pxe.store.tokens.claim_install_token`); a later use from another address records a
    security event and raises SecurityRefusalError (403). A use from the bound address reads
    nothing more and writes nothing.
    """
    bound = host.bound_addr if isinstance(host, Reporter) else host.token_bound_addr
    if bound is None:
        if claim_install_token(database, host.id, token_hash, address):
            return
        row = _BOUND.first(database.engine, host_id=host.id, token_hash=token_hash)
        bound = row.token_bound_addr if row is not None else None
        if bound is None:  # replaced since it was read: a new cycle began
            raise SecurityRefusalError(WRONG_ADDRESS, "this install token was just replaced")
    if bound == address:
        return
    who = f"host {host.hostname or host.id}"
    record_security_event(
        database, host.id, WRONG_ADDRESS,
        f"{who}'s install token was used from {address}; it is bound to {bound}, the address "
        "that used it first: refused",
    )  # fmt: skip
    raise SecurityRefusalError(
        WRONG_ADDRESS,
        f"this install token is bound to the address that used it first, not {address}; "
        "reinstall the host to start a new install",
    )


def record_progress(
    database: Database,
    host: Reporter,
    step: str,
    percent: int | None,
    message: str,
    *,
    seq: int | None = None,
    bmc_seen: BmcSeen | None = None,
) -> bool:
    """Record a progress event; the first one of a ready host moves it to installing (True).
    ConflictError when the host is neither ready nor installing. A replay of report ``seq``
    records nothing (False). ``bmc_seen`` (the host's own BMC, read by its installer) is kept
    among the host's facts, where assigning the BMC finds it."""

    def write(tx: Transaction) -> bool:
        state, last = _locked(tx, host)
        if _replayed(seq, last):
            return False
        now = utcnow()
        starting = state == State.READY
        if starting:
            reason = f"installer started: {step}"
            _move(tx, host, State.INSTALLING, reason, now)
            _event(tx, host, now, "state", reason)
        elif state != State.INSTALLING:
            raise ConflictError(f"{host.who} is {state.value}, not installing")
        _event(tx, host, now, "progress", message, step=step, percent=percent, seq=seq)
        if bmc_seen is not None:
            row = tx.first(_FACTS, host_id=host.id)
            facts = {**(row.facts if row is not None and row.facts else {}),
                     SEEN_FACT: bmc_seen.as_fact()}  # fmt: skip
            tx.run(_SET_FACTS, host_id=host.id, facts=facts, now=now)
        _numbered(tx, host, seq, now)
        return starting

    return write_transaction(database, write)


def mark_installed(
    database: Database,
    host: Reporter,
    *,
    seq: int | None = None,
    registration_key_hash: str | None = None,
) -> None:
    """Move the host to installed, once: ConflictError when it already reported build-done,
    TransitionError (a conflict too) when its state does not allow it; a replay of report
    ``seq`` (the same build-done retried) changes nothing and is no error.

    ``registration_key_hash`` is kept as the host's: it came with the install token from the
    address that token is bound to, so the first boot that holds the key is the host's
    (:mod:`pxe.registration`). A build-done without one leaves the host none."""

    def write(tx: Transaction) -> None:
        state, last = _locked(tx, host)
        if _replayed(seq, last):
            return
        if state in FINISHED:
            raise ConflictError(f"{host.who} already reported build-done (it is {state.value})")
        check_transition(state, State.INSTALLED, host.who)
        now = utcnow()
        tx.run(_DONE, host_id=host.id, key_hash=registration_key_hash, seq=seq, now=now)
        _event(tx, host, now, "done", DONE_REASON, seq=seq)

    write_transaction(database, write)


def mark_failed(
    database: Database, host: Reporter, reason: str, log: str, *, seq: int | None = None
) -> None:
    """Move the host to failed with the installer's reason and log; TransitionError (a
    conflict) when its state does not allow it (a second failure report, for one); a replay
    of report ``seq`` changes nothing and is no error."""

    def write(tx: Transaction) -> None:
        state, last = _locked(tx, host)
        if _replayed(seq, last):
            return
        check_transition(state, State.FAILED, host.who)
        now = utcnow()
        tx.run(_FAILED, host_id=host.id, reason=reason, log=log, seq=seq, now=now)
        _event(tx, host, now, "failed", reason, seq=seq)

    write_transaction(database, write)


def _locked(tx: Transaction, host: Reporter) -> tuple[State, int | None]:
    """The host's state and the highest report number of its cycle, its row locked."""
    row = tx.first(_STATE, host_id=host.id)
    if row is None:  # removed since its token was read
        raise NotFoundError("host", host.id)
    return State(row.state), row.report_seq


def _replayed(seq: int | None, last: int | None) -> bool:
    return seq is not None and last is not None and seq <= last


def _numbered(tx: Transaction, host: Reporter, seq: int | None, now: datetime) -> None:
    if seq is not None:
        tx.run(_SEQ, host_id=host.id, seq=seq, now=now)


def _move(tx: Transaction, host: Reporter, state: State, reason: str, now: datetime) -> None:
    tx.run(_MOVE, host_id=host.id, state=state.value, reason=reason, now=now)


def _event(
    tx: Transaction,
    host: Reporter,
    now: datetime,
    kind: str,
    message: str,
    *,
    step: str = "",
    percent: int | None = None,
    seq: int | None = None,
) -> None:
    tx.run(_EVENT, host_id=host.id, time=now, kind=kind, step=step, percent=percent,
           message=message, seq=seq)  # fmt: skip
