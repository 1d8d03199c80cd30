"""Audit rows for admin requests: API calls that change things and dashboard actions.

:func:`begin` is called before the action runs; the row is then added to the request's write
session just before it commits, so the change and its audit row land in one transaction.

:func:`finish` runs once the response is known: an action that was refused or failed (no
commit, or an error after it) gets its row, with the status and the reason, in a transaction
of its own, after what the action left uncommitted is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import g
from sqlalchemy import event
from sqlalchemy.orm import Session

from pxe.db.models import Audit
from pxe.store.audit import OK, record, redact
from pxe.web.context import client_address, db

log = logging.getLogger(__name__)

_KEY = "_xcp_audit"


@dataclass
class _Pending:
    actor: str
    action: str
    target: str
    source: str
    fields: list[str]
    hide: set[str] = field(default_factory=set)
    keep: set[str] = field(default_factory=set)
    row: Audit | None = None
    committed: bool = False
    finishing: bool = False

    def add_to(self, session: Session, result: str) -> Audit:
        return record(
            session,
            actor=self.actor,
            action=self.action,
            target=self.target,
            source=self.source,
            result=result,
            fields=self.fields,
        )


def begin(
    *,
    actor: str,
    action: str,
    target: str = "",
    fields: Iterable[str] = (),
    hide: Iterable[str] = (),
    keep: Iterable[str] = (),
) -> None:
    """Audit this request's action. ``hide`` are values the request carried that must never
    be copied into the audit (see :func:`pxe.store.audit.redact`); ``keep`` are safe ones."""
    pending = _Pending(
        actor=actor,
        action=action,
        target=target,
        source=client_address(),
        fields=list(fields),
        hide=set(hide),
        keep={*keep, *fields, target},
    )
    setattr(g, _KEY, pending)
    session = db(write=True)

    def _before_commit(session: Session) -> None:
        if pending.row is None and not pending.finishing:
            pending.row = pending.add_to(session, OK)

    def _after_commit(_session: Session) -> None:
        if pending.row is not None:
            pending.committed = True

    def _after_rollback(_session: Session) -> None:
        if not pending.committed:
            pending.row = None

    event.listen(session, "before_commit", _before_commit)
    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_rollback", _after_rollback)


def finish(status: int, error: str | None = None) -> None:
    """Record how the action begun in this request ended: ``status`` and ``error`` (the
    sentence the caller was shown), or nothing more if it committed and succeeded."""
    pending: _Pending | None = g.pop(_KEY, None)
    if pending is None:
        return
    failed = status >= 400 or error is not None
    if pending.committed and not failed:
        return
    result = OK
    if failed:
        reason = redact(error or "", hide=pending.hide, keep=pending.keep)
        result = f"{status} {reason}".strip()
    # The request's own write session: a failed action may still hold SQLite's write lock in
    # it, which a second session would wait for in vain. Whatever it left uncommitted goes.
    pending.finishing = True
    session = db(write=True)
    try:
        session.rollback()
        done = session.get(Audit, pending.row.id) if pending.committed and pending.row else None
        if done is not None:
            done.result = result
        else:
            pending.add_to(session, result)
        session.commit()
    except Exception:
        session.rollback()
        # The response is already decided; losing its audit row is logged loudly, not hidden.
        log.exception("could not write the audit row of %s %s", pending.action, pending.target)
