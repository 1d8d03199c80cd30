"""What a boot decision needs to know of a host, read in one prepared statement.

Every PXE request of a rack asks this first (by MAC, then SMBIOS UUID, then serial): loading the
ORM host with its profile, pools and MACs cost more than the rest of an installed host's answer.
Only the columns the decision reads come back, the MACs folded into one column, with the count
of install slots taken (for ``max_concurrent_installs``) as a subquery of the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, bindparam, func, literal_column, select
from sqlalchemy.orm import Session, aliased

from pxe.db.models import Host, HostMac
from pxe.db.prepared import PreparedRead
from pxe.store.lifecycle import State
from pxe.store.profiles import EffectiveProfile, ResolvedProfile, chain_rows
from pxe.store.tokens import slots_taken

_SEPARATOR = ","


@dataclass(frozen=True)
class BootFacts:
    """A host as the boot decision sees it, whichever way it was read: so one decision serves
    the fast path (:func:`boot_facts`) and a write session holding the ORM host (:meth:`of`).

    ``slots_taken`` is the whole inventory's: hosts holding an install slot
    (:func:`pxe.store.tokens.slots_taken`), read in the same statement."""

    id: int
    hostname: str | None
    state: str
    state_reason: str
    profile_id: int | None
    smbios_uuid: str | None
    serial: str | None
    arch: str | None
    updated_at: datetime
    token_held: bool  # an install token was handed out in this install cycle
    token_claimed: bool  # ... and used (the answer file fetched with it)
    install_attempts: int
    queued: bool
    slots_taken: int
    mac_list: tuple[str, ...]

    @property
    def claimed(self) -> bool:
        """The install of this cycle has started: its token is used, or the installer reports
        (an install begun before the claim was recorded, too)."""
        return self.token_claimed or self.state == State.INSTALLING

    @classmethod
    def of(cls, host: Host, slots_taken: int = 0) -> BootFacts:
        """The ORM ``host`` as its session has it, unflushed changes of its columns included."""
        return cls(
            host.id, host.hostname, host.state, host.state_reason, host.profile_id,
            host.smbios_uuid, host.serial, host.arch, host.updated_at,
            host.install_token_hash is not None, host.token_claimed_at is not None,
            host.install_attempts or 0, host.queued_at is not None, slots_taken,
            tuple(host.mac_list),
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
        Host.smbios_uuid, Host.serial, Host.arch, Host.updated_at,
        Host.install_token_hash.label("token_held"), Host.token_claimed_at.label("claimed_at"),
        Host.install_attempts, Host.queued_at, slots_taken().label("slots_taken"),
        macs.label("macs"),
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
            *fields, held, claimed_at, attempts, queued_at, slots, macs = row
            return BootFacts(
                *fields, token_held=held is not None, token_claimed=claimed_at is not None,
                install_attempts=attempts or 0, queued=queued_at is not None,
                slots_taken=int(slots or 0),
                mac_list=tuple(macs.split(_SEPARATOR)) if macs else (),
            )  # fmt: skip
    return None


def count_slots_taken(session: Session) -> int:
    """Hosts holding an install slot, as a write session sees them now."""
    return int(session.scalar(select(slots_taken())) or 0)
