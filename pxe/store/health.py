"""Hosts' health rows: the last report of each host, apart from the hosts' own rows.

The judging of a report and its events are :mod:`pxe.health`'s, the report token
:mod:`pxe.store.tokens`'; this module only keeps what it is given (pxe.db.models.HostHealth
says why apart).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pxe.db.models import Host, HostHealth, utcnow


def _row(session: Session, host: Host) -> HostHealth:
    row = session.get(HostHealth, host.id)
    if row is None:
        row = HostHealth(host_id=host.id, raid=[])
        session.add(row)
    _known(session)[host.id] = row
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
    _known(session)[host.id] = None


_KNOWN = "xcp_health"  # Session.info key: host id -> its HostHealth or None, read in this session
_CHUNK = 500  # host ids per IN (...) query


def _known(session: Session) -> dict[int, HostHealth | None]:
    return session.info.setdefault(_KNOWN, {})


def health_of(host: Host) -> HostHealth | None:
    """The host's health through the session it was loaded in (None if detached, or never
    issued a token). As :func:`pxe.store.bmc.bmc_of`: the first call reads it for every host
    the session holds, so a view of many hosts is a few queries, not one per host."""
    session = object_session(host)
    if session is None:
        return None
    known = _known(session)
    if host.id not in known:
        ids = [host.id] + [
            obj.id
            for obj in session.identity_map.values()
            if isinstance(obj, Host) and obj.id is not None and obj.id not in known
            and obj.id != host.id
        ]  # fmt: skip
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = select(HostHealth).where(HostHealth.host_id.in_(chunk))
            found = {row.host_id: row for row in session.scalars(query)}
            known.update({host_id: found.get(host_id) for host_id in chunk})
    return known[host.id]
