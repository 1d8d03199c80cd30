"""A freshly installed host calls home: record it, place it in its pool, put it in DNS.

Tokens: the host authenticates with the one-time install token it was given at PXE time. The
token is *spent* when the host is admitted to its pool (in-pool): from then on it opens nothing
new. One exception keeps the first-boot agent safe from a lost response: for
:data:`REPLAY_WINDOW` after the join, a re-registration whose facts are identical to the
admitted ones gets the same answer again, changing nothing. A host refused by its pool keeps its
token unspent, so it can register again once the admin has fixed the cause (set ``force`` on the
pool, reinstalled it with the right release).

Concurrency: a registration reads what it needs in a read transaction, decides, and writes
the decision in one short write transaction (:mod:`pxe.store.registrations`) on condition that
what it read still holds; otherwise it reads again. The first admitted host becomes master by a
conditional ``UPDATE pools SET master_host_id = :me WHERE master_host_id IS NULL``, which
exactly one transaction can win on SQLite (writers serialised) and on PostgreSQL (row lock,
re-checked predicate); every other host then reads the winner and is checked against its
facts, and its write checks that the winner is still the pool's master, unchanged.

Every registration answered 200 also carries a new report token, with which the host reports
its health from then on (:mod:`pxe.health`); the one it had before stops working. It reaches
only the holder of the install token, from the address that token is bound to: a machine that
merely knows the host's MAC cannot report for it.

DNS runs after the database commit, so a slow or absent DNS server never holds the inventory's
write lock; its outcome is recorded as events, and never fails a registration.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import registration_key
from pxe.boot.identity import Identity
from pxe.config import Settings
from pxe.db.models import Host, utcnow
from pxe.db.prepared import transaction
from pxe.db.session import Database
from pxe.db.write_retry import retried, write_transaction, write_with_retries
from pxe.dns.errors import DnsError
from pxe.dns.settings import DnsSettings
from pxe.dns.update import DnsUpdater, RecordStatus
from pxe.host_report import HostReport, parse_report
from pxe.pools import JoinFacts, check_join
from pxe.store.errors import ConflictError, StoreError
from pxe.store.events import EventRow, record_event
from pxe.store.lifecycle import Move, State, move
from pxe.store.macs import slaac_address
from pxe.store.pools import create_pool
from pxe.store.registrations import (
    InventoryReader,
    MasterSeen,
    PoolRow,
    RegisteringHost,
    RegistrationWrite,
    apply_registration,
)
from pxe.store.security_events import KIND as SECURITY
from pxe.store.security_events import REGISTER_IDENTITY, WRONG_ADDRESS
from pxe.store.tokens import REPORT_PREFIX, hash_token, host_for_install_token, new_token

log = logging.getLogger(__name__)

REPLAY_WINDOW = timedelta(minutes=10)
MASTER_WAIT_SECONDS = 30
# Reads of one registration before giving up on an inventory that keeps changing under it:
# in practice one more, for the hosts whose read raced the pool's first master.
DECISION_ATTEMPTS = 20
JOINED = "pool-joined"
REFUSED = "pool-refused"


class TokenError(StoreError):
    """No install token, or one no host holds (401)."""

    status = 401


class ForbiddenError(StoreError):
    """A token of another host, or one spent by an earlier join (403)."""

    status = 403


class IdentityMismatchError(ForbiddenError):
    """A registration that does not match what the server knows of the token's host (403),
    recorded as a security event; ``check`` names the security check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Answer:
    """What the first-boot agent is told; the wire format of ``POST /api/v1/register``."""

    state: str
    pool: str | None = None
    role: str | None = None
    master_address: str | None = None
    pool_secret: str | None = None
    reasons: tuple[str, ...] = ()
    # Seconds after which to ask again, when the refusal is only for now (the pool's named
    # master has not registered yet): served as 503 + Retry-After, which the agent retries.
    retry_after: int | None = None
    # The host's new credential for its health reports (pxe.health); new at every answer, so
    # not part of what makes two answers the same.
    report_token: str | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pool": self.pool,
            "role": self.role,
            "master_address": self.master_address,
            "pool_secret": self.pool_secret,
            "reasons": list(self.reasons),
            "report_token": self.report_token,
        }


@dataclass(frozen=True)
class _Placed:
    answer: Answer
    host_id: int
    # (hostname, address) of the DNS records to ensure, and those the host had before.
    dns_now: tuple[str, str] | None = None
    dns_before: tuple[str, str] | None = None
    changed: bool = True
    # A refusal whose security event is committed with this transaction, raised after it.
    mismatch: IdentityMismatchError | None = None


def dns_settings(settings: Settings) -> DnsSettings | None:
    """The server's ``[dns]`` settings as the updater needs them; None when DNS is off."""
    return DnsSettings.from_mapping(
        {
            "server": settings.dns_server,
            "port": settings.dns_port,
            "forward_zone": settings.dns_forward_zone,
            "reverse_zones": settings.dns_reverse_zone_names(),
            "key_name": settings.dns_key_name,
            "algorithm": settings.dns_key_algorithm,
            "secret_file": settings.dns_key_file,
        }
    )


def register(
    database: Database,
    token: str | None,
    body: Any,
    *,
    dns: DnsSettings | None = None,
    source: str | None = None,
) -> Answer:
    """Handle one registration from client address ``source`` (None: a caller in this process,
    not the network, so no address to check); raises a :class:`StoreError` whose ``status`` is
    the HTTP code."""
    if not token:
        raise TokenError("registration needs 'Authorization: Bearer <install token>'")
    report = parse_report(body)
    placed = _recorded(database, token, report, source)
    if placed.mismatch is not None:
        log.warning("security: host %d: %s: %s", placed.host_id, placed.mismatch.check,
                    placed.mismatch)  # fmt: skip
        raise placed.mismatch
    if dns is not None and placed.changed:
        _update_dns(database, dns, placed)
    return placed.answer


class _PoolMissingError(Exception):
    """The answer file names a pool the inventory does not have yet."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _recorded(database: Database, token: str, report: HostReport, source: str | None) -> _Placed:
    """Read, decide, write; again from the read when the write finds that what the decision
    rested on changed meanwhile (another host became the pool's master first)."""
    token_hash = hash_token(token)
    for _ in range(DECISION_ATTEMPTS):
        try:
            placed, write = retried(lambda: _read_and_decided(database, token_hash, report, source))
        except _PoolMissingError as missing:
            _create_pool(database, missing.name, token)
            continue
        try:
            if write_transaction(database, lambda tx, w=write: apply_registration(tx, w)):
                return placed
        except IntegrityError:
            if write.add_mac is None:
                raise
            # Another host took the reported MAC since the read: the next read refuses it.
    raise ConflictError("the inventory kept changing while this host registered; register again")


def _read_and_decided(
    database: Database, token_hash: str, report: HostReport, source: str | None
) -> tuple[_Placed, RegistrationWrite]:
    with transaction(database.engine, write=False) as read:
        return _decided(InventoryReader(read), token_hash, report, source)


def on_host_removed(settings: Settings, host: Host) -> list[str]:
    """Delete the host's DNS records before it leaves the inventory; returns what went wrong.

    Called by the inventory's remove path. A DNS failure must not keep a host in the
    inventory, so problems are returned (and logged) rather than raised.
    """
    dns = dns_settings(settings)
    address = (host.facts or {}).get("management_ip")
    if dns is None or not host.hostname or not address:
        return []
    try:
        DnsUpdater(dns).remove_host(host.hostname, address)
    except DnsError as exc:
        log.warning("host %s removed, but its DNS records were not: %s", host.hostname, exc)
        return [str(exc)]
    return []


def _decided(
    reader: InventoryReader, token_hash: str, report: HostReport, source: str | None
) -> tuple[_Placed, RegistrationWrite]:
    """What this registration answers and records, from one read of the inventory."""
    host = reader.host(token_hash)
    if host is None:
        raise TokenError("this install token is not valid (it may have been replaced)")
    mismatch = _mismatch(reader, host, report, source)
    if mismatch is not None:
        refused = EventRow(SECURITY, f"registration refused: {mismatch}", step=mismatch.check)
        placed = _Placed(Answer(state=host.state), host.id, changed=False, mismatch=mismatch)
        return placed, RegistrationWrite(host.id, host.updated_at, events=(refused,))
    add_mac = _new_mac(reader, host, report.mac)
    values: dict[str, Any] = {}
    if source is not None and host.token_bound_addr is None:
        values.update(token_bound_addr=source, token_claimed_at=utcnow())
    if host.token_spent:
        placed = _replay(reader, host, report)
        write = RegistrationWrite(host.id, host.updated_at, values, add_mac)
    else:
        placed, write = _placed(reader, host, report, values, add_mac)
    if placed.answer.retry_after is not None:  # a wait (503) carries no report token
        return placed, write
    token = new_token(REPORT_PREFIX)
    answer = replace(placed.answer, report_token=token)
    return replace(placed, answer=answer), replace(write, report_token_hash=hash_token(token))


def _placed(
    reader: InventoryReader,
    host: RegisteringHost,
    report: HostReport,
    values: dict[str, Any],
    add_mac: str | None,
) -> tuple[_Placed, RegistrationWrite]:
    """Record the report and place the host: standalone, refused, or in its pool."""
    before = _dns_target(host.hostname, host.facts)
    facts = {**host.facts, **report.facts}
    hostname = report.hostname if report.hostname and not host.hostname else host.hostname
    values.update(facts=facts, hostname=hostname)
    who = f"host {hostname or host.id}"
    after = _dns_target(hostname, facts)
    pool = _pool_for(reader, host, report)
    if pool is None:
        moved = move(host.state, State.REGISTERED, "registered; no pool assigned", who)
        answer = Answer(
            state=State.REGISTERED.value,
            reasons=(
                "No pool is assigned to this host (inventory, profile or answer file); it stays "
                "a standalone host.",
            ),
        )
        write = _moved(host, values, add_mac, moved, refusal_reasons=[])
        return _Placed(answer, host.id, after, before), write
    values["pool_id"] = pool.id
    verdict, claim, master_seen = _admit(reader, host, pool, report.join)
    if verdict.role is None:
        moved = move(host.state, State.REGISTERED, f"refused by pool {pool.name}", who)
        refused = EventRow(REFUSED, f"pool {pool.name}: " + " ".join(verdict.reasons))
        answer = Answer(
            state=State.REGISTERED.value,
            pool=pool.name,
            reasons=tuple(verdict.reasons),
            retry_after=verdict.retry_after,
        )
        write = _moved(host, values, add_mac, moved, refused, refusal_reasons=verdict.reasons)
    else:
        moved = move(host.state, State.IN_POOL, f"joined pool {pool.name} as {verdict.role}", who)
        joined = EventRow(JOINED, f"pool {pool.name} as {verdict.role}")
        answer = _admitted(pool, verdict)
        write = _moved(host, values, add_mac, moved, joined, refusal_reasons=[], token_spent=True)
    write = replace(write, claim_master=claim, master_seen=master_seen)
    return _Placed(answer, host.id, after, before), write


def _moved(
    host: RegisteringHost,
    values: dict[str, Any],
    add_mac: str | None,
    moved: Move,
    *events: EventRow,
    **columns: Any,
) -> RegistrationWrite:
    """The write that moves the host as ``moved`` says, with ``values`` and ``columns`` on its
    row, the state's event and then ``events``."""
    row = {**values, **columns, "state": moved.state.value, "state_reason": moved.reason}
    moves = (EventRow("state", moved.event),) if moved.event is not None else ()
    return RegistrationWrite(host.id, host.updated_at, row, add_mac, (*moves, *events))


def _mismatch(
    reader: InventoryReader, host: RegisteringHost, report: HostReport, source: str | None
) -> IdentityMismatchError | None:
    """Why this registration is not the token's host, or None: its MAC (when the inventory
    lists some), the SMBIOS UUID and serial the host reported at PXE time (when it did and the
    registration reports them), and the client address (when the token is bound: the address
    its install used, a static management address of its profile, ``ipaddr`` or ``ipv6``, or
    the address IPv6 autoconfiguration gives one of its MACs; from any other address, only a
    registration holding the host's registration key)."""
    refused = None
    if host.macs and report.mac not in host.macs:
        refused = f"this install token belongs to another host than the one with MAC {report.mac}"
    uuid = Identity.clean(report.mac, uuid=_reported_text(report, "smbios_uuid")).uuid
    if refused is None and uuid and host.smbios_uuid and uuid != host.smbios_uuid:
        refused = ("the SMBIOS UUID this host reports is not the one it reported when it booted "
                   "its installer")  # fmt: skip
    serial = Identity.clean(report.mac, serial=_reported_text(report, "serial")).serial
    if refused is None and serial and host.serial and serial != host.serial:
        refused = ("the serial number this host reports is not the one it reported when it "
                   "booted its installer")  # fmt: skip
    if refused is not None:
        return IdentityMismatchError(REGISTER_IDENTITY, refused)
    if (
        source is not None
        and host.token_bound_addr is not None
        and source != host.token_bound_addr
        and source not in _static_addresses(reader, host)
        and not _autoconfigured(source, host.macs)
        and not _holds_key(host, report.key)
    ):
        return IdentityMismatchError(
            WRONG_ADDRESS,
            f"this install token is bound to the address its install used, not {source} (nor "
            "is that a static address of the host's profile or the IPv6 autoconfiguration "
            "address of one of its MACs, and no registration key matched); register from the "
            "host itself",
        )
    return None


def _holds_key(host: RegisteringHost, key: str | None) -> bool:
    """Whether ``key`` is the registration key the host's installer announced with build-done
    (common.registration_key): with the install token, from the address the token is bound
    to, so only the installed disk holds it. That proves the host wherever dom0's address
    comes from: DHCPv6, or a lease that changed since the install."""
    if not key or host.registration_key_hash is None:
        return False
    return hmac.compare_digest(registration_key.digest(key), host.registration_key_hash)


def _reported_text(report: HostReport, field: str) -> str | None:
    value = report.facts.get(field)
    return value if isinstance(value, str) and value else None


def _static_addresses(reader: InventoryReader, host: RegisteringHost) -> set[str]:
    """The management addresses the host's profile gives it (fresh-static's ``ipaddr``,
    fresh-static-ipv6's ``ipv6``): where its dom0 comes up, rather than the address its
    installer had, which is often IPv4 even for a host managed over IPv6."""
    if host.profile_id is None:
        return set()
    try:
        variables = reader.profile(host.profile_id).variables
    except ConflictError:
        return set()
    return {_address(str(variables[key])) for key in ("ipaddr", "ipv6") if variables.get(key)}


def _autoconfigured(source: str, macs: Sequence[str]) -> bool:
    """Whether ``source`` is the address SLAAC gives one of the inventory's MACs on its /64:
    dom0 on ``protov6="autoconf"`` has no address known in advance, but the low 64 bits of the
    one it takes are its MAC's. Only the inventory's MACs count: a MAC the registration merely
    reports would let any holder of the token choose its own. Any prefix passes, since the site's
    router chooses it; a link-local address is no management address."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    if not isinstance(address, ipaddress.IPv6Address) or address.is_link_local:
        return False
    prefix = ipaddress.IPv6Network((address, 64), strict=False)
    return any(slaac_address(prefix, mac) == address for mac in macs)


def _address(text: str) -> str:
    """An address as a client's is written (``2001:DB8:0::7/64`` is ``2001:db8::7``)."""
    bare = text.split("/", maxsplit=1)[0].strip()
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def _new_mac(reader: InventoryReader, host: RegisteringHost, mac: str) -> str | None:
    """The MAC to add to the host: none when the reported one is its own; 403 when it is not.

    A host listed by serial or UUID only has no MAC to compare: it takes the reported one,
    unless another host owns it, so its next PXE boot finds it by MAC too.
    """
    if mac in host.macs:
        return None
    if host.macs or reader.mac_taken(mac):
        raise ForbiddenError(
            f"this install token belongs to another host than the one with MAC {mac}"
        )
    return mac


def _replay(reader: InventoryReader, host: RegisteringHost, report: HostReport) -> _Placed:
    """A spent token: accept only the agent repeating its successful registration."""
    same = all(host.facts.get(key) == value for key, value in report.facts.items())
    joined_at = reader.last_event(host.id, JOINED)
    recent = joined_at is not None and utcnow() - joined_at <= REPLAY_WINDOW
    pool = reader.pool(pool_id=host.pool_id) if host.pool_id is not None else None
    if not (same and recent and host.state == State.IN_POOL and pool is not None):
        raise ForbiddenError(
            "this install token was spent when the host joined its pool; reinstall the host "
            "to register it again"
        )
    if pool.master_host_id == host.id:
        verdict = _Verdict("master", [], host.facts.get("management_ip"))
    else:
        master = reader.master(pool.master_host_id) if pool.master_host_id is not None else None
        verdict = _Verdict("member", [], master.facts.get("management_ip") if master else None)
    return _Placed(_admitted(pool, verdict), host.id, changed=False)


def _pool_for(reader: InventoryReader, host: RegisteringHost, report: HostReport) -> PoolRow | None:
    """The inventory entry's pool, else its profile's (inherited), else the answer file's
    (_PoolMissingError when that one is still to be created)."""
    if host.pool_id is not None:
        return reader.pool(pool_id=host.pool_id)
    if host.profile_id is not None:
        pool_id = reader.profile(host.profile_id).pool_id
        if pool_id is not None:
            return reader.pool(pool_id=pool_id)
    if report.pool is None:
        return None
    pool = reader.pool(name=report.pool)
    if pool is None:
        raise _PoolMissingError(report.pool)
    return pool


def _create_pool(database: Database, name: str, token: str) -> None:
    """Create the pool an answer file names, with an event on the host whose registration
    asked for it; no error when another host of the same answer file was first."""

    def create(session: Session) -> None:
        try:
            with session.begin_nested():
                create_pool(session, name)
        except (IntegrityError, ConflictError):
            return
        host = host_for_install_token(session, token)
        if host is not None:
            record_event(session, host, "pool", f"pool {name} created from the answer file")

    write_with_retries(database, create)


@dataclass(frozen=True)
class _Verdict:
    role: str | None  # master | member | None when refused
    reasons: list[str]
    master_address: str | None = None
    retry_after: int | None = None


def _admit(
    reader: InventoryReader, host: RegisteringHost, pool: PoolRow, joiner: JoinFacts
) -> tuple[_Verdict, int | None, MasterSeen | None]:
    """The pool's verdict on the host, and what the write must check of it: the pool whose
    master the host claims (its first host), or the master the verdict was made against."""
    master_id = pool.master_host_id
    if master_id is None:
        return _Verdict("master", [], joiner.management_ip), pool.id, None
    if master_id == host.id:
        master_seen = MasterSeen(pool.id, host.id, host.updated_at)
        return _Verdict("master", [], joiner.management_ip), None, master_seen
    master = reader.master(master_id)
    master_seen = MasterSeen(pool.id, master_id, master.updated_at if master else None)
    if master is None or master.state != State.IN_POOL:
        name = (master.hostname or master.id) if master is not None else master_id
        wait = _Verdict(
            None,
            [f"The pool's master {name} has not registered yet; register again once it has."],
            retry_after=MASTER_WAIT_SECONDS,
        )
        return wait, None, master_seen
    reasons = check_join(JoinFacts.from_mapping(master.facts), joiner, force=pool.force)
    if reasons:
        return _Verdict(None, reasons), None, master_seen
    return _Verdict("member", [], master.facts["management_ip"]), None, master_seen


def _admitted(pool: PoolRow, verdict: _Verdict) -> Answer:
    return Answer(
        state=State.IN_POOL.value,
        pool=pool.name,
        role=verdict.role,
        master_address=verdict.master_address,
        pool_secret=pool.secret,
    )


def _dns_target(hostname: str | None, facts: Mapping[str, Any]) -> tuple[str, str] | None:
    address = facts.get("management_ip")
    return (hostname, address) if hostname and address else None


def _update_dns(database: Database, dns: DnsSettings, placed: _Placed) -> None:
    """Ensure the host's records; every outcome worth knowing becomes an event."""
    messages: list[str] = []
    updater = DnsUpdater(dns)
    try:
        if placed.dns_before is not None and placed.dns_before != placed.dns_now:
            updater.remove_host(*placed.dns_before)
            messages.append(f"removed the records of {' at '.join(placed.dns_before)}")
        if placed.dns_now is None:
            messages.append("no host name reported: DNS records not added")
        else:
            result = updater.add_host(*placed.dns_now)
            messages += [
                f"added {record}" for record, status in result.done if status is RecordStatus.ADDED
            ]
            messages += [f"not added: {problem}" for problem in result.problems]
    except DnsError as exc:
        messages.append(f"not updated: {exc}")
    if not messages:
        return

    def record(session: Session) -> None:
        host = session.get(Host, placed.host_id)
        if host is not None:
            for message in messages:
                record_event(session, host, "dns", message)

    write_with_retries(database, record)
