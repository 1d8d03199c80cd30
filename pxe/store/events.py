"""The append-only history of each host: discoveries, state moves, installer progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Event, Host, utcnow


def record_event(
    session: Session,
    host: Host,
    kind: str,
    message: str = "",
    *,
    step: str = "",
    percent: int | None = None,
) -> Event:
    event = Event(
        host_id=host.id,
        time=utcnow(),
        kind=kind[:32],
        step=step[:128],
        percent=percent,
        message=message,
    )
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
