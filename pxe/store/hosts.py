"""Hosts: adding, finding by any identity, editing, state moves, reinstall and removal."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, bindparam, func, select, true
from sqlalchemy.orm import Session, aliased, joinedload

from pxe.db.models import Host, HostMac, Pool, Profile, utcnow
from pxe.db.prepared import PreparedRead
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.events import record_event
from pxe.store.health import forget_health
from pxe.store.lifecycle import State, move
from pxe.store.macs import is_mac, normalise_mac
from pxe.store.names import row_id
from pxe.store.pools import get_pool
from pxe.store.profiles import ResolvedProfile, chain_rows, get_profile

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EDITABLE = ("hostname", "macs", "uuid", "serial", "profile", "pool", "facts")


def check_hostname(name: Any) -> str:
    if not isinstance(name, str) or not _HOSTNAME.fullmatch(name):  # not "name\n"
        raise InvalidInputError(
            f"{name!r} is not a valid host name (RFC 1123 labels joined by dots)"
        )
    return name.lower()


def normalise_uuid(text: Any) -> str:
    value = str(text).strip().lower()
    if not _UUID.match(value):
        raise InvalidInputError(f"{text!r} is not an SMBIOS UUID (8-4-4-4-12 hex digits)")
    return value


def _normalise_macs(macs: Iterable[str] | str) -> list[str]:
    if isinstance(macs, str):
        macs = [macs]
    out: list[str] = []
    for mac in macs:
        norm = normalise_mac(mac)
        if norm not in out:
            out.append(norm)
    return out


def _claim_macs(session: Session, host: Host, macs: list[str]) -> None:
    taken = session.scalars(select(HostMac).where(HostMac.mac.in_(macs))).all()
    for row in taken:
        if row.host_id != host.id:
            raise ConflictError(f"MAC {row.mac} already belongs to host {row.host_id}")
    keep = {m.mac: m for m in host.macs}
    host.macs = [keep.get(mac) or HostMac(mac=mac) for mac in macs]


def add_host(
    session: Session,
    *,
    macs: Iterable[str] | str = (),
    hostname: str | None = None,
    uuid: str | None = None,
    serial: str | None = None,
    profile: str | int | None = None,
    pool: str | int | None = None,
    facts: Mapping[str, Any] | None = None,
    state: State | None = None,
) -> Host:
    """A new host; ready when it has a profile, discovered otherwise (unless ``state`` says)."""
    mac_list = _normalise_macs(macs)
    serial = str(serial).strip() or None if serial else None  # blanks are no serial number
    if not (mac_list or uuid or serial):
        raise InvalidInputError("a host needs at least one MAC, SMBIOS UUID or serial number")
    host = Host(
        hostname=check_hostname(hostname) if hostname else None,
        smbios_uuid=normalise_uuid(uuid) if uuid else None,
        serial=serial,
        facts=dict(facts or {}),
        refusal_reasons=[],
        state_reason="",
        failure_log="",
        token_spent=False,
        install_attempts=0,
    )
    if profile is not None and profile != "":
        host.profile = get_profile(session, profile)
    if pool is not None and pool != "":
        host.pool = get_pool(session, pool)
    host.state = (state or (State.READY if host.profile else State.DISCOVERED)).value
    session.add(host)
    session.flush()
    _claim_macs(session, host, mac_list)
    session.flush()
    record_event(session, host, "state", f"added as {host.state}")
    return host


# A host is nearly always used with its profile and pool: load them in the same query.
_WITH_PROFILE = (joinedload(Host.profile).joinedload(Profile.pool), joinedload(Host.pool))


def get_host(session: Session, ref: str | int) -> Host:
    """By id, MAC or host name, whichever ``ref`` looks like, in that order (twelve digits are
    an id and a MAC)."""
    host: Host | None = None
    if row_id(ref) is not None:
        host = session.get(Host, row_id(ref), options=_WITH_PROFILE)
    if host is None and is_mac(ref):
        host = host_by_mac(session, ref)
    elif host is None and row_id(ref) is None:
        query = select(Host).options(*_WITH_PROFILE).where(Host.hostname == str(ref).lower())
        host = session.scalar(query)
    if host is None:
        raise NotFoundError("host", ref)
    return host


@dataclass(frozen=True)
class AnswerFileHost:
    """What a host's answer file needs of it and of its profile, and the hash its token must
    match."""

    id: int
    hostname: str | None
    mac: str | None  # the first MAC recorded, as Host.mac_list[0]
    pool_name: str | None  # the host's own pool, not one inherited from its profile
    install_token_hash: str | None
    profile: ResolvedProfile | None  # None: the host has no profile
    # The address the token is bound to once used (pxe.boot.decide's install cycle).
    token_bound_addr: str | None = None

    @property
    def effective_pool(self) -> str | None:
        """The host's own pool, else the nearest one along its profile's ancestry."""
        return self.pool_name or (self.profile.pool_name if self.profile else None)

    @classmethod
    def of(cls, host: Host) -> AnswerFileHost:
        """From a loaded ORM host; raises ConflictError for a profile that inherits from
        itself."""
        macs = host.mac_list
        return cls(host.id, host.hostname, macs[0] if macs else None,
                   host.pool.name if host.pool is not None else None, host.install_token_hash,
                   ResolvedProfile.of(host.profile) if host.profile is not None else None,
                   host.token_bound_addr)


def _answerfile_query(target: ColumnElement[Any]) -> Select[Any]:
    """Host ``target`` (an id expression), one row per profile of its ancestry (one row of
    NULL profile columns without a profile); no row when there is no such host."""
    first_mac = (
        select(HostMac.mac).where(HostMac.host_id == Host.id).order_by(HostMac.id).limit(1)
        .correlate(Host).scalar_subquery()
    )  # fmt: skip
    own_pool = aliased(Pool)
    chain = chain_rows(select(Host.profile_id).where(Host.id == target).scalar_subquery())
    return (
        select(Host.id.label("host_id"), Host.hostname, first_mac.label("mac"),
               own_pool.name.label("host_pool_name"), Host.install_token_hash,
               Host.token_bound_addr, Host.profile_id.label("host_profile_id"), *chain.c)
        .outerjoin(own_pool, own_pool.id == Host.pool_id)
        .outerjoin(chain, true())
        .where(Host.id == target)
    )  # fmt: skip


def _host_id_where(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return select(Host.id).where(condition).order_by(Host.id).limit(1).scalar_subquery()


# Built once, with a bound parameter: building a statement costs more than running it.
_ANSWERFILE_HOST_BY = {
    "id": PreparedRead(_answerfile_query(bindparam("ref"))),
    "mac": PreparedRead(_answerfile_query(_host_id_where(
        Host.id.in_(select(HostMac.host_id).where(HostMac.mac == bindparam("ref")))))),
    "hostname": PreparedRead(_answerfile_query(_host_id_where(
        Host.hostname == bindparam("ref")))),
}  # fmt: skip


def answerfile_host(engine: Engine, ref: str | int) -> AnswerFileHost:
    """:func:`get_host`'s lookup (id, MAC or host name), the host's profile ancestry and pools
    in one query of plain columns, where the ORM host is several queries (MACs, then a lazy
    load per ancestor and pool) for a handful of values: every installing host asks once.

    Read on every call, never cached: several server processes share the database, and a
    profile an operator just edited must be what the next host gets. Raises NotFoundError like
    :func:`get_host`, ConflictError for a profile that inherits from itself.
    """
    if row_id(ref) is not None:
        by, value = "id", row_id(ref)
    elif is_mac(ref):
        by, value = "mac", normalise_mac(ref)
    else:
        by, value = "hostname", str(ref).lower()
    rows = _ANSWERFILE_HOST_BY[by].rows(engine, ref=value)
    if not rows:
        raise NotFoundError("host", ref)
    host = rows[0]
    profile = None
    if host.host_profile_id is not None:
        profile = ResolvedProfile.from_rows(host.host_profile_id, rows)
    return AnswerFileHost(host.host_id, host.hostname, host.mac, host.host_pool_name,
                          host.install_token_hash, profile, host.token_bound_addr)


def host_by_mac(session: Session, mac: str) -> Host | None:
    query = select(Host).options(*_WITH_PROFILE).join(HostMac)
    return session.scalar(query.where(HostMac.mac == normalise_mac(mac)).limit(1))


def find_host(
    session: Session, *, mac: str | None = None, uuid: str | None = None, serial: str | None = None
) -> Host | None:
    """The host with this MAC, else this SMBIOS UUID, else this serial number."""
    if mac:
        host = host_by_mac(session, mac)
        if host is not None:
            return host
    if uuid:
        host = session.scalar(select(Host).where(Host.smbios_uuid == uuid.lower()).limit(1))
        if host is not None:
            return host
    if serial:
        return session.scalar(select(Host).where(Host.serial == serial).limit(1))
    return None


def list_hosts(
    session: Session,
    *,
    state: str | None = None,
    pool: str | None = None,
    profile: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Host]:
    query = select(Host).order_by(Host.id)
    if state:
        query = query.where(Host.state == state)
    if pool:
        query = query.where(Host.pool_id == get_pool(session, pool).id)
    if profile:
        query = query.where(Host.profile_id == get_profile(session, profile).id)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_hosts_in_state(session: Session, state: State) -> int:
    return int(session.scalar(select(func.count()).where(Host.state == state.value)) or 0)


def count_hosts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Host.state, func.count()).group_by(Host.state)).all()
    return {str(state): int(count) for state, count in rows}


def set_state(
    session: Session, host: Host, target: State, reason: str = "", *, kind: str = "state"
) -> None:
    """Move ``host`` to ``target`` if the lifecycle allows it, and record why."""
    moved = move(host.state, target, reason, f"host {host.hostname or host.id}")
    host.state = target.value
    host.state_reason = reason
    host.updated_at = utcnow()
    if moved.event is not None:
        record_event(session, host, kind, moved.event)


def update_host(session: Session, host: Host, **changes: Any) -> Host:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInputError(
            f"unknown host field(s) {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}"
        )
    if "hostname" in changes:
        host.hostname = check_hostname(changes["hostname"]) if changes["hostname"] else None
    if "uuid" in changes:
        host.smbios_uuid = normalise_uuid(changes["uuid"]) if changes["uuid"] else None
    if "serial" in changes:
        host.serial = str(changes["serial"]).strip() or None if changes["serial"] else None
    if "facts" in changes:
        if not isinstance(changes["facts"], Mapping):
            raise InvalidInputError("host facts must be an object")
        host.facts = dict(changes["facts"])
    if "pool" in changes:
        host.pool = get_pool(session, changes["pool"]) if changes["pool"] else None
    if "macs" in changes:
        _claim_macs(session, host, _normalise_macs(changes["macs"] or []))
    if not (host.macs or host.smbios_uuid or host.serial):
        # Valid or not depends on what else the host has: a conflict, not a malformed edit.
        raise ConflictError(
            f"host {host.hostname or host.id} needs at least one MAC, SMBIOS UUID or serial "
            "number; this edit would leave it none"
        )
    if "profile" in changes:
        ref = changes["profile"]
        host.profile = get_profile(session, ref) if ref else None
        if host.profile is not None and host.state == State.DISCOVERED:
            set_state(session, host, State.READY, f"profile {host.profile.name} assigned")
        elif host.profile is None and host.state == State.READY:
            set_state(session, host, State.DISCOVERED, "profile removed")
    host.updated_at = utcnow()
    session.flush()
    return host


def reinstall_host(session: Session, host: Host, reason: str = "reinstall requested") -> Host:
    """Back to ready: a new install cycle (pxe.boot.decide), whose first boot gets the
    installer with a new token, with its install attempts counted from zero again."""
    if host.profile_id is None:
        raise ConflictError(
            f"host {host.hostname or host.id} has no profile; assign one to install it"
        )
    set_state(session, host, State.READY, reason)
    host.install_token_hash = None
    host.token_spent = False
    host.token_claimed_at = None
    host.token_bound_addr = None
    host.registration_key_hash = None
    host.install_attempts = 0
    host.queued_at = None
    host.failure_log = ""
    host.refusal_reasons = []
    forget_health(session, host)
    session.flush()
    return host


def remove_host(session: Session, host: Host) -> None:
    session.delete(host)
    session.flush()
