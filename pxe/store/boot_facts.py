"""What a boot decision needs to know of a host, read in one prepared statement.

Every PXE request of a rack asks this first (by MAC, then SMBIOS UUID, then serial): loading the
ORM host with its profile, pools and MACs cost more than the rest of an installed host's answer.
Only the columns the decision reads come back, the MACs folded into one column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, bindparam, func, literal_column, select
from sqlalchemy.orm import aliased

from pxe.db.models import Host, HostMac
from pxe.db.prepared import PreparedRead
from pxe.store.profiles import EffectiveProfile, ResolvedProfile, chain_rows

_SEPARATOR = ","


@dataclass(frozen=True)
class BootFacts:
    """A host as the boot decision sees it, whichever way it was read: so one decision serves
    the fast path (:func:`boot_facts`) and a write session holding the ORM host (:meth:`of`)."""

    id: int
    hostname: str | None
    state: str
    state_reason: str
    profile_id: int | None
    smbios_uuid: str | None
    serial: str | None
    arch: str | None
    updated_at: datetime
    mac_list: tuple[str, ...]

    @classmethod
    def of(cls, host: Host) -> BootFacts:
        """The ORM ``host`` as its session has it, unflushed changes of its columns included."""
        return cls(
            host.id, host.hostname, host.state, host.state_reason, host.profile_id,
            host.smbios_uuid, host.serial, host.arch, host.updated_at, tuple(host.mac_list),
        )  # fmt: skip


def _statement(column: ColumnElement[str], *, by_mac: bool) -> PreparedRead:
    other = aliased(HostMac)
    macs = (
        select(func.aggregate_strings(other.mac, literal_column(f"'{_SEPARATOR}'")))
        .where(other.host_id == Host.id)
        .scalar_subquery()
    )
    query = select(
        Host.id, Host.hostname, Host.state, Host.state_reason, Host.profile_id,
        Host.smbios_uuid, Host.serial, Host.arch, Host.updated_at, macs.label("macs"),
    )  # fmt: skip
    if by_mac:
        query = query.join(HostMac, HostMac.host_id == Host.id)
    return PreparedRead(query.where(column == bindparam("value")).limit(1))


# Built once: a request only binds its value.
_LOOKUPS = (
    ("mac", _statement(HostMac.mac, by_mac=True)),
    ("uuid", _statement(Host.smbios_uuid, by_mac=False)),
    ("serial", _statement(Host.serial, by_mac=False)),
)


_CHAIN = PreparedRead(select(chain_rows(bindparam("profile_id"))))


def effective_profile(engine: Engine, profile_id: int) -> EffectiveProfile:
    """Profile ``profile_id`` with its ancestors folded in, from one recursive query.
    ConflictError for a profile that inherits from itself."""
    rows = _CHAIN.rows(engine, profile_id=profile_id)
    return ResolvedProfile.from_rows(profile_id, rows).profile


def boot_facts(
    engine: Engine, *, mac: str | None = None, uuid: str | None = None, serial: str | None = None
) -> BootFacts | None:
    """The host with this MAC, else this SMBIOS UUID, else this serial number (all normalised
    by the caller, as :class:`pxe.boot.identity.Identity` is)."""
    given = {"mac": mac, "uuid": uuid, "serial": serial}
    for name, statement in _LOOKUPS:
        if not given[name]:
            continue
        row = statement.first(engine, value=given[name])
        if row is not None:
            *fields, macs = row
            return BootFacts(*fields, mac_list=tuple(macs.split(_SEPARATOR)) if macs else ())
    return None
