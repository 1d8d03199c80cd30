"""The append-only history of each host: discoveries, state moves, installer progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Event, Host, utcnow

# The columns :meth:`EventRow.values` gives, in its order.
EVENT_COLUMNS = ("host_id", "time", "kind", "step", "percent", "message")


@dataclass(frozen=True)
class EventRow:
    """One event to record, before it has a host's row to hang on (a decision written later
    in Core, :mod:`pxe.store.registrations`); the columns' lengths are kept here."""

    kind: str
    message: str = ""
    step: str = ""
    percent: int | None = None
    time: datetime = field(default_factory=utcnow)

    def values(self, host_id: int) -> dict[str, Any]:
        row = (host_id, self.time, self.kind[:32], self.step[:128], self.percent, self.message)
        return dict(zip(EVENT_COLUMNS, row, strict=True))


def record_event(
    session: Session,
    host: Host,
    kind: str,
    message: str = "",
    *,
    step: str = "",
    percent: int | None = None,
) -> Event:
    event = Event(**EventRow(kind, message, step, percent).values(host.id))
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    host: Host | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[Event]:
    """Newest last, at most ``limit`` (the latest ones)."""
    query = select(Event)
    if host is not None:
        query = query.where(Event.host_id == host.id)
    if kind:
        query = query.where(Event.kind == kind)
    if since is not None:
        query = query.where(Event.time > since)
    rows = list(session.scalars(query.order_by(Event.time.desc(), Event.id.desc()).limit(limit)))
    rows.reverse()
    return rows
