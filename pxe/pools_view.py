"""One pool as an admin sees it: its master, its members, and the hosts it refused and why.

Shared by ``GET /api/v1/pools/<name>``, ``xcp-provision pools show`` and the dashboard, so all
three say the same thing about a pool.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pxe.db.models import Host, Pool
from pxe.store.lifecycle import State
from pxe.store.pools import pool_members
from pxe.store.views import pool_view


def _brief(host: Host, pool: Pool) -> dict[str, Any]:
    return {
        "id": host.id,
        "hostname": host.hostname,
        "state": host.state,
        "role": "master" if pool.master_host_id == host.id else "member",
        "address": (host.facts or {}).get("management_ip"),
    }


def pool_detail(session: Session, pool: Pool) -> dict[str, Any]:
    """The pool with ``members`` (in-pool hosts), ``refused`` (with reasons) and ``pending``.

    ``pending`` are hosts assigned to the pool that have not registered yet. A host waiting for
    the pool's named master to register is among the refused, with that reason.
    """
    members, refused, pending = [], [], []
    for host in pool_members(session, pool):
        if host.state == State.IN_POOL:
            members.append(_brief(host, pool))
        elif host.refusal_reasons:
            refused.append(
                {
                    "id": host.id,
                    "hostname": host.hostname,
                    "state": host.state,
                    "reasons": list(host.refusal_reasons),
                }
            )
        else:
            pending.append({"id": host.id, "hostname": host.hostname, "state": host.state})
    return {
        **pool_view(pool),
        "master_address": (pool.master.facts or {}).get("management_ip") if pool.master else None,
        "members": members,
        "refused": refused,
        "pending": pending,
    }
