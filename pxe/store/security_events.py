"""Security events: a host's install token used from an address it is not bound to, a
registration that does not match what the server knows of the host.

Each is an event of kind ``security`` in the host's history, its ``step`` naming the check
that refused (:data:`WRONG_ADDRESS`, :data:`REGISTER_IDENTITY`), and a warning in the log. The
request itself is refused with a 403 whose sentence says what did not match, never the values
the server holds.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from pxe.db.models import Event, utcnow
from pxe.db.session import Database
from pxe.db.write_retry import write_statements
from pxe.store.errors import StoreError

log = logging.getLogger(__name__)

KIND = "security"
WRONG_ADDRESS = "token-address"
REGISTER_IDENTITY = "register-identity"
CHECKS = (WRONG_ADDRESS, REGISTER_IDENTITY)


class SecurityRefusalError(StoreError):
    """A request refused by a security check (403); ``check`` names it."""

    status = 403

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


def record_security_event(database: Database, host_id: int, check: str, message: str) -> None:
    """Record the event in its own transaction (the refused request writes nothing else)."""

    def write(connection: Connection) -> None:
        row = {"host_id": host_id, "time": utcnow(), "kind": KIND, "step": check,
               "percent": None, "message": message}  # fmt: skip
        connection.execute(insert(Event), row)

    write_statements(database, write)
    log.warning("security: host %d: %s: %s", host_id, check, message)


def recent_security_events(
    session: Session, *, since: datetime | None = None, limit: int = 10
) -> list[Event]:
    """The latest security events of every host, newest first."""
    query = select(Event).where(Event.kind == KIND)
    if since is not None:
        query = query.where(Event.time > since)
    return list(session.scalars(query.order_by(Event.time.desc(), Event.id.desc()).limit(limit)))


def count_security_events(session: Session, *, since: datetime | None = None) -> int:
    query = select(func.count()).select_from(Event).where(Event.kind == KIND)
    if since is not None:
        query = query.where(Event.time > since)
    return int(session.scalar(query) or 0)
