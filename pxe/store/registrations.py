"""What a registration reads of the inventory, and the one short write that records it.

A registration reads a dozen things (its host, MACs, pool, the pool's master, the profile) and
writes a few rows. Read and decided inside the write transaction, as the ORM did it, SQLite's
write lock stayed held through every read and every Python step of the decision, each waiting
for the interpreter behind the other requests: a rack registering at once went through at
~280 a second whatever the CPU had left. So the reads here run in a read transaction that
blocks no writer, :mod:`pxe.registration` decides on what they returned, and
:func:`apply_registration` writes the decision in a few prepared statements
(:mod:`pxe.db.prepared`), on condition that what the decision rested on is unchanged (the
host's row by its ``updated_at``, the pool's master by its id and row). When it changed,
nothing is written and the caller reads again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from pxe.db.models import Event, Host, HostHealth, HostMac, Pool, utcnow
from pxe.db.prepared import PreparedRead, PreparedWrite, Transaction
from pxe.store.events import EVENT_COLUMNS, EventRow
from pxe.store.macs import normalise_mac
from pxe.store.profiles import EffectiveProfile, ResolvedProfile, chain_rows

_HOST = PreparedRead(select(
    Host.id, Host.hostname, Host.state, Host.facts, Host.token_spent, Host.token_bound_addr,
    Host.smbios_uuid, Host.serial, Host.registration_key_hash, Host.pool_id, Host.profile_id,
    Host.updated_at,
).where(Host.install_token_hash == bindparam("token_hash")))  # fmt: skip
_MACS = PreparedRead(
    select(HostMac.mac).where(HostMac.host_id == bindparam("host_id")).order_by(HostMac.id)
)
_MAC_TAKEN = PreparedRead(
    select(HostMac.host_id).where(HostMac.mac == bindparam("mac")).limit(1)
)
_POOL = select(Pool.id, Pool.name, Pool.secret, Pool.force, Pool.master_host_id)
_POOL_BY_ID = PreparedRead(_POOL.where(Pool.id == bindparam("pool_id")))
_POOL_BY_NAME = PreparedRead(_POOL.where(Pool.name == bindparam("name")))
_MASTER = PreparedRead(
    select(Host.id, Host.hostname, Host.state, Host.facts, Host.updated_at).where(
        Host.id == bindparam("host_id")
    )
)
_CHAIN = PreparedRead(select(chain_rows(bindparam("profile_id"))))
_LAST_EVENT = PreparedRead(
    select(Event.time)
    .where(Event.host_id == bindparam("host_id"), Event.kind == bindparam("kind"))
    .order_by(Event.id.desc())
    .limit(1)
)

# The columns a registration writes on its host's row; each keeps its value unless the write
# gives one. One statement, built once: building an UPDATE per request for the columns at hand
# cost a quarter of the write.
HOST_COLUMNS = (
    "hostname", "facts", "pool_id", "state", "state_reason", "refusal_reasons", "token_spent",
    "token_bound_addr", "token_claimed_at",
)  # fmt: skip
_MASTER_ROW = aliased(Host)
# The master a member's verdict was made against (``master`` None: no verdict to check) is
# still the pool's, its row unchanged: checked by the host's own UPDATE, one statement fewer
# while the write lock is held.
_MASTER_HOLDS = or_(
    bindparam("master", type_=Integer).is_(None),
    and_(
        select(Pool.master_host_id).where(Pool.id == bindparam("master_pool")).scalar_subquery()
        == bindparam("master", type_=Integer),
        select(_MASTER_ROW.updated_at).where(_MASTER_ROW.id == bindparam("master"))
        .scalar_subquery() == bindparam("master_seen", type_=Host.updated_at.type),
    ),
)  # fmt: skip
_MOVE_HOST = PreparedWrite(
    update(Host)
    .where(Host.id == bindparam("row"), Host.updated_at == bindparam("seen"), _MASTER_HOLDS)
    .values(
        **{name: func.coalesce(bindparam(f"new_{name}", type_=getattr(Host, name).type),
                               getattr(Host, name)) for name in HOST_COLUMNS},
        updated_at=bindparam("updated"),
    )
)  # fmt: skip
_CLAIM_MASTER = PreparedWrite(
    update(Pool)
    .where(Pool.id == bindparam("pool_id"), Pool.master_host_id.is_(None))
    .values(master_host_id=bindparam("host_id"))
)
_ADD_MAC = PreparedWrite(
    insert(HostMac).values(host_id=bindparam("owner"), mac=bindparam("new_mac"))
)


@functools.cache
def _events(count: int) -> PreparedWrite:
    """One INSERT of ``count`` events: one statement, where executemany is one per row."""
    rows = [
        {name: bindparam(f"e{i}_{name}", type_=getattr(Event, name).type) for name in EVENT_COLUMNS}
        for i in range(count)
    ]
    return PreparedWrite(insert(Event).values(rows))


def _report_token(insert_into: Callable[[type[HostHealth]], Any]) -> PreparedWrite:
    """The host's report token, its health row made if it has none: one statement."""
    statement = insert_into(HostHealth).values(
        host_id=bindparam("owner"), token_hash=bindparam("report_hash"), raid=bindparam("no_raid")
    )
    return PreparedWrite(statement.on_conflict_do_update(
        index_elements=[HostHealth.host_id], set_={"token_hash": statement.excluded.token_hash}
    ))  # fmt: skip


# INSERT ... ON CONFLICT is written alike by both, but built by each dialect's own insert().
_REPORT_TOKEN = {
    "sqlite": _report_token(sqlite.insert),
    "postgresql": _report_token(postgresql.insert),
}


@dataclass(frozen=True)
class PoolRow:
    id: int
    name: str
    secret: str
    force: bool
    # As read with the rest; the write checks it is still the pool's master.
    master_host_id: int | None


@dataclass(frozen=True)
class MasterRow:
    id: int
    hostname: str | None
    state: str
    facts: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class RegisteringHost:
    """The token holder's row as one read transaction saw it."""

    id: int
    hostname: str | None
    state: str
    facts: dict[str, Any]
    token_spent: bool
    token_bound_addr: str | None
    smbios_uuid: str | None
    serial: str | None
    registration_key_hash: str | None
    pool_id: int | None
    profile_id: int | None
    # What the write compares: any change to the row since moves it.
    updated_at: datetime
    macs: tuple[str, ...] = ()


class InventoryReader:
    """The reads of one registration, all in one read transaction: one snapshot of the
    inventory, which takes no write lock."""

    def __init__(self, transaction: Transaction) -> None:
        self._read = transaction

    def host(self, token_hash: str) -> RegisteringHost | None:
        row = self._read.first(_HOST, token_hash=token_hash)
        if row is None:
            return None
        macs = [mac_row.mac for mac_row in self._read.rows(_MACS, host_id=row.id)]
        return RegisteringHost(
            id=row.id, hostname=row.hostname, state=row.state, facts=row.facts or {},
            token_spent=bool(row.token_spent), token_bound_addr=row.token_bound_addr,
            smbios_uuid=row.smbios_uuid, serial=row.serial,
            registration_key_hash=row.registration_key_hash, pool_id=row.pool_id,
            profile_id=row.profile_id, updated_at=row.updated_at, macs=tuple(macs),
        )  # fmt: skip

    def mac_taken(self, mac: str) -> bool:
        """Whether a host has ``mac``."""
        return self._read.first(_MAC_TAKEN, mac=normalise_mac(mac)) is not None

    def pool(self, *, pool_id: int | None = None, name: str | None = None) -> PoolRow | None:
        if pool_id is not None:
            row = self._read.first(_POOL_BY_ID, pool_id=pool_id)
        else:
            row = self._read.first(_POOL_BY_NAME, name=name)
        if row is None:
            return None
        return PoolRow(row.id, row.name, row.secret, bool(row.force), row.master_host_id)

    def master(self, host_id: int) -> MasterRow | None:
        row = self._read.first(_MASTER, host_id=host_id)
        if row is None:
            return None
        return MasterRow(row.id, row.hostname, row.state, row.facts or {}, row.updated_at)

    def profile(self, profile_id: int) -> EffectiveProfile:
        """The host's profile with its ancestors folded in (ConflictError on a cycle)."""
        rows = self._read.rows(_CHAIN, profile_id=profile_id)
        return ResolvedProfile.from_rows(profile_id, rows).profile

    def last_event(self, host_id: int, kind: str) -> datetime | None:
        """When the host's latest event of ``kind`` was recorded."""
        row = self._read.first(_LAST_EVENT, host_id=host_id, kind=kind)
        return row.time if row is not None else None


@dataclass(frozen=True)
class MasterSeen:
    """The pool's master as the decision saw it (``updated_at`` None: its row was gone)."""

    pool_id: int
    master_id: int
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RegistrationWrite:
    """What one registration decided to record."""

    host_id: int
    seen: datetime  # the host row's updated_at the decision read
    # Columns of HOST_COLUMNS to set (empty: the row is kept); updated_at moves with them.
    host_values: Mapping[str, Any] = field(default_factory=dict)
    add_mac: str | None = None
    events: tuple[EventRow, ...] = ()
    # The pool whose master this host becomes, if none has become it since the read.
    claim_master: int | None = None
    # The master the decision was made against, which must still be the pool's.
    master_seen: MasterSeen | None = None
    report_token_hash: str | None = None


def apply_registration(write_to: Transaction, write: RegistrationWrite) -> bool:
    """Record ``write`` in a write transaction; False, writing nothing the caller keeps (it
    rolls back), when what it was decided on changed since it was read."""
    claim = write.claim_master
    if claim is not None and write_to.run(_CLAIM_MASTER, pool_id=claim, host_id=write.host_id) != 1:
        return False
    if write.master_seen is not None and not write.host_values:
        raise ValueError("a verdict against a master comes with the host's move")
    if write.host_values and write_to.run(_MOVE_HOST, **_host_parameters(write)) != 1:
        return False
    if write.add_mac is not None:
        write_to.run(_ADD_MAC, owner=write.host_id, new_mac=write.add_mac)
    if write.events:
        values = {
            f"e{i}_{name}": value
            for i, event in enumerate(write.events)
            for name, value in event.values(write.host_id).items()
        }
        write_to.run(_events(len(write.events)), **values)
    if write.report_token_hash is not None:
        write_to.run(_REPORT_TOKEN[write_to.dialect_name], owner=write.host_id,
                     report_hash=write.report_token_hash, no_raid=[])  # fmt: skip
    return True


def _host_parameters(write: RegistrationWrite) -> dict[str, Any]:
    unknown = set(write.host_values) - set(HOST_COLUMNS)
    if unknown:
        raise ValueError(f"a registration cannot write {sorted(unknown)}: add it to HOST_COLUMNS")
    values = {f"new_{name}": write.host_values.get(name) for name in HOST_COLUMNS}
    master = write.master_seen
    return {
        **values,
        "row": write.host_id,
        "seen": write.seen,
        "updated": utcnow(),
        "master": master.master_id if master is not None else None,
        "master_pool": master.pool_id if master is not None else None,
        "master_seen": master.updated_at if master is not None else None,
    }
