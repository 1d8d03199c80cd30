"""Rows kept one per host beside the host's own (its BMC, its last health report), read for
every host a session holds at once: views of many hosts ask for them host by host, and listing
1,000 hosts must not cost 1,000 more queries.

What a session has read (or written) is remembered in its ``info`` under the caller's key, host
id -> row or None, so writers keep the memory true by :func:`remember`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pxe.db.models import Host

Row = TypeVar("Row")
_CHUNK = 500  # host ids per IN (...) query


def remember(session: Session, key: str, host_id: int, row: Any) -> None:
    _known(session, key)[host_id] = row


def _known(session: Session, key: str) -> dict[int, Any]:
    return session.info.setdefault(key, {})


def row_of(host: Host, model: type[Row], key: str) -> Row | None:
    """``host``'s row of ``model`` (a table keyed by ``host_id``) through the session the host
    was loaded in, None if it has none or is detached. The first call reads the rows of every
    host that session holds."""
    session = object_session(host)
    if session is None:
        return None
    known = _known(session, key)
    if host.id not in known:
        ids = [host.id] + [
            obj.id
            for obj in session.identity_map.values()
            if isinstance(obj, Host) and obj.id is not None and obj.id not in known
            and obj.id != host.id
        ]  # fmt: skip
        column = model.host_id  # type: ignore[attr-defined]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            found = {
                row.host_id: row for row in session.scalars(select(model).where(column.in_(chunk)))
            }
            known.update({host_id: found.get(host_id) for host_id in chunk})
    return known[host.id]
