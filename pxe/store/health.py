"""Hosts' health rows: the last report of each host, apart from the hosts' own rows.

The judging of a report and its events are :mod:`pxe.health`'s, the report token
:mod:`pxe.store.tokens`'; this module only keeps what it is given (pxe.db.models.HostHealth
says why apart).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pxe.db.models import Host, HostHealth, utcnow
from pxe.store import per_host


def _row(session: Session, host: Host) -> HostHealth:
    row = session.get(HostHealth, host.id)
    if row is None:
        row = HostHealth(host_id=host.id, raid=[])
        session.add(row)
    per_host.remember(session, _KNOWN, host.id, row)
    return row


def save_health(
    session: Session, host: Host, raid: list[dict[str, Any]], raid_state: str
) -> list[dict[str, Any]]:
    """Keep the host's arrays as last reported; returns those it reported before."""
    row = _row(session, host)
    before = list(row.raid or [])
    row.raid = raid
    row.raid_state = raid_state
    row.reported_at = utcnow()
    return before


def forget_health(session: Session, host: Host) -> None:
    """A reinstall wipes the disks the reports were about and the dom0 holding the token."""
    row = session.get(HostHealth, host.id)
    if row is not None:
        session.delete(row)
    per_host.remember(session, _KNOWN, host.id, None)


_KNOWN = "xcp_health"  # Session.info key of pxe.store.per_host


def health_of(host: Host) -> HostHealth | None:
    """The host's health through the session it was loaded in (None if detached, or never
    issued a token), read with every other host's that session holds."""
    return per_host.row_of(host, HostHealth, _KNOWN)
