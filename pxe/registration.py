"""A freshly installed host calls home: record it, place it in its pool, put it in DNS.

Tokens: the host authenticates with the one-time install token it was given at PXE time. The
token is *spent* when the host is admitted to its pool (in-pool): from then on it opens nothing
new. One exception keeps the first-boot agent safe from a lost response: for
:data:`REPLAY_WINDOW` after the join, a re-registration whose facts are identical to the
admitted ones gets the same answer again, changing nothing. A host refused by its pool keeps its
token unspent, so it can register again once the admin has fixed the cause (set ``force`` on the
pool, reinstalled it with the right release).

Concurrency: the first admitted host becomes master by a conditional
``UPDATE pools SET master_host_id = :me WHERE master_host_id IS NULL``, which exactly one
transaction can win on SQLite (writers serialised) and on PostgreSQL (row lock, re-checked
predicate); every other host then reads the winner and is checked against its facts.

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
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import registration_key
from pxe.boot.identity import Identity
from pxe.config import Settings
from pxe.db.models import Event, Host, HostMac, Pool, utcnow
from pxe.db.session import Database
from pxe.db.write_retry import write_with_retries
from pxe.dns.errors import DnsError
from pxe.dns.settings import DnsSettings
from pxe.dns.update import DnsUpdater, RecordStatus
from pxe.host_report import HostReport, parse_report
from pxe.pools import JoinFacts, check_join
from pxe.store.errors import ConflictError, StoreError
from pxe.store.events import record_event
from pxe.store.hosts import host_by_mac, set_state
from pxe.store.lifecycle import State
from pxe.store.macs import slaac_address
from pxe.store.pools import create_pool
from pxe.store.profiles import resolve_profile
from pxe.store.security_events import KIND as SECURITY
from pxe.store.security_events import REGISTER_IDENTITY, WRONG_ADDRESS
from pxe.store.tokens import host_for_install_token, issue_report_token, spend_install_token

log = logging.getLogger(__name__)

REPLAY_WINDOW = timedelta(minutes=10)
MASTER_WAIT_SECONDS = 30
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
    placed = write_with_retries(database, lambda session: _place(session, token, report, source))
    if placed.mismatch is not None:
        raise placed.mismatch
    if dns is not None and placed.changed:
        _update_dns(database, dns, placed)
    return placed.answer


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


def _place(session: Session, token: str, report: HostReport, source: str | None) -> _Placed:
    host = host_for_install_token(session, token)
    if host is None:
        raise TokenError("this install token is not valid (it may have been replaced)")
    mismatch = _mismatch(host, report, source)
    if mismatch is not None:
        record_event(session, host, SECURITY, f"registration refused: {mismatch}",
                     step=mismatch.check)  # fmt: skip
        log.warning("security: host %d: %s: %s", host.id, mismatch.check, mismatch)
        return _Placed(Answer(state=host.state), host.id, changed=False, mismatch=mismatch)
    _check_identity(session, host, report.mac)
    if source is not None and host.token_bound_addr is None:
        host.token_bound_addr = source
        host.token_claimed_at = utcnow()
    if host.token_spent:
        return _with_report_token(session, host, _replay(session, host, report))
    return _with_report_token(session, host, _placed(session, host, report))


def _with_report_token(session: Session, host: Host, placed: _Placed) -> _Placed:
    """A 200 answer carries a new report token; a wait (503) carries none."""
    if placed.answer.retry_after is not None:
        return placed
    answer = replace(placed.answer, report_token=issue_report_token(session, host))
    return replace(placed, answer=answer)


def _placed(session: Session, host: Host, report: HostReport) -> _Placed:
    """Record the report and place the host: standalone, refused, or in its pool."""
    before = _dns_target(host)
    host.facts = {**(host.facts or {}), **report.facts}
    if report.hostname and not host.hostname:
        host.hostname = report.hostname
    pool = _pool_for(session, host, report)
    if pool is None:
        set_state(session, host, State.REGISTERED, "registered; no pool assigned")
        host.refusal_reasons = []
        answer = Answer(
            state=State.REGISTERED.value,
            reasons=(
                "No pool is assigned to this host (inventory, profile or answer file); it stays "
                "a standalone host.",
            ),
        )
        return _Placed(answer, host.id, _dns_target(host), before)
    host.pool = pool
    session.flush()
    verdict = _admit(session, host, pool, report.join)
    if verdict.role is None:
        reasons = verdict.reasons
        set_state(session, host, State.REGISTERED, f"refused by pool {pool.name}")
        host.refusal_reasons = list(reasons)
        record_event(session, host, REFUSED, f"pool {pool.name}: " + " ".join(reasons))
        answer = Answer(
            state=State.REGISTERED.value,
            pool=pool.name,
            reasons=tuple(reasons),
            retry_after=verdict.retry_after,
        )
    else:
        set_state(session, host, State.IN_POOL, f"joined pool {pool.name} as {verdict.role}")
        host.refusal_reasons = []
        spend_install_token(host)
        record_event(session, host, JOINED, f"pool {pool.name} as {verdict.role}")
        answer = _admitted(pool, verdict)
    return _Placed(answer, host.id, _dns_target(host), before)


def _mismatch(host: Host, report: HostReport, source: str | None) -> IdentityMismatchError | None:
    """Why this registration is not the token's host, or None: its MAC (when the inventory
    lists some), the SMBIOS UUID and serial the host reported at PXE time (when it did and the
    registration reports them), and the client address (when the token is bound: the address
    its install used, a static management address of its profile, ``ipaddr`` or ``ipv6``, or
    the address IPv6 autoconfiguration gives one of its MACs; from any other address, only a
    registration holding the host's registration key)."""
    refused = None
    if host.mac_list and report.mac not in host.mac_list:
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
    allowed = {host.token_bound_addr, *_static_addresses(host)} - {None}
    if (
        source is not None
        and host.token_bound_addr is not None
        and source not in allowed
        and not _autoconfigured(source, host.mac_list)
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


def _holds_key(host: Host, key: str | None) -> bool:
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


def _static_addresses(host: Host) -> set[str]:
    """The management addresses the host's profile gives it (fresh-static's ``ipaddr``,
    fresh-static-ipv6's ``ipv6``): where its dom0 comes up, rather than the address its
    installer had, which is often IPv4 even for a host managed over IPv6."""
    if host.profile is None:
        return set()
    try:
        variables = resolve_profile(host.profile).variables
    except ConflictError:
        return set()
    return {_address(str(variables[key])) for key in ("ipaddr", "ipv6") if variables.get(key)}


def _autoconfigured(source: str, macs: list[str]) -> bool:
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


def _check_identity(session: Session, host: Host, mac: str) -> None:
    """403 unless the reported MAC is this host's.

    A host listed by serial or UUID only has no MAC to compare: it takes the reported one,
    unless another host owns it, so its next PXE boot finds it by MAC too.
    """
    if mac in host.mac_list:
        return
    if host.mac_list or host_by_mac(session, mac) is not None:
        raise ForbiddenError(
            f"this install token belongs to another host than the one with MAC {mac}"
        )
    host.macs.append(HostMac(mac=mac))


def _replay(session: Session, host: Host, report: HostReport) -> _Placed:
    """A spent token: accept only the agent repeating its successful registration."""
    facts = host.facts or {}
    same = all(facts.get(key) == value for key, value in report.facts.items())
    joined_at = session.scalar(
        select(Event.time)
        .where(Event.host_id == host.id, Event.kind == JOINED)
        .order_by(Event.id.desc())
        .limit(1)
    )
    recent = joined_at is not None and utcnow() - joined_at <= REPLAY_WINDOW
    if not (same and recent and host.state == State.IN_POOL and host.pool is not None):
        raise ForbiddenError(
            "this install token was spent when the host joined its pool; reinstall the host "
            "to register it again"
        )
    master_id = _master_id(session, host.pool)
    if master_id == host.id:
        verdict = _Verdict("master", [], facts["management_ip"])
    else:
        master = _master_facts(session, master_id) if master_id is not None else None
        address = master.facts["management_ip"] if master is not None else None
        verdict = _Verdict("member", [], address)
    return _Placed(_admitted(host.pool, verdict), host.id, changed=False)


def _pool_for(session: Session, host: Host, report: HostReport) -> Pool | None:
    """The inventory entry's pool, else its profile's (inherited), else the answer file's."""
    if host.pool is not None:
        return host.pool
    if host.profile is not None:
        pool_id = resolve_profile(host.profile).pool_id
        if pool_id is not None:
            return session.get(Pool, pool_id)
    if report.pool is None:
        return None
    pool = session.scalar(select(Pool).where(Pool.name == report.pool))
    if pool is not None:
        return pool
    try:
        with session.begin_nested():
            pool = create_pool(session, report.pool)
    except (IntegrityError, ConflictError):  # another host of this answer file was first
        return session.scalars(select(Pool).where(Pool.name == report.pool)).one()
    record_event(session, host, "pool", f"pool {report.pool} created from the answer file")
    return pool


@dataclass(frozen=True)
class _Verdict:
    role: str | None  # master | member | None when refused
    reasons: list[str]
    master_address: str | None = None
    retry_after: int | None = None


def _master_id(session: Session, pool: Pool) -> int | None:
    """The pool's master as committed now.

    Never ``pool.master_host_id``: the row loaded with the host may predate another host's
    claim (PostgreSQL's read committed shows each statement the latest commit, not the ORM).
    """
    return session.scalar(select(Pool.master_host_id).where(Pool.id == pool.id))


def _master_facts(session: Session, master_id: int) -> Any:
    return session.execute(
        select(Host.id, Host.hostname, Host.state, Host.facts).where(Host.id == master_id)
    ).one_or_none()


def _admit(session: Session, host: Host, pool: Pool, joiner: JoinFacts) -> _Verdict:
    master_id = _master_id(session, pool)
    if master_id is None:
        claim = session.execute(
            update(Pool)
            .where(Pool.id == pool.id, Pool.master_host_id.is_(None))
            .values(master_host_id=host.id)
            .execution_options(synchronize_session=False)
        )
        if claim.rowcount == 1:
            return _Verdict("master", [], joiner.management_ip)
        master_id = _master_id(session, pool)
    if master_id == host.id:
        return _Verdict("master", [], joiner.management_ip)
    master = _master_facts(session, master_id)
    if master is None or master.state != State.IN_POOL:
        name = (master.hostname or master.id) if master is not None else master_id
        return _Verdict(
            None,
            [f"The pool's master {name} has not registered yet; register again once it has."],
            retry_after=MASTER_WAIT_SECONDS,
        )
    reasons = check_join(JoinFacts.from_mapping(master.facts), joiner, force=pool.force)
    if reasons:
        return _Verdict(None, reasons)
    return _Verdict("member", [], master.facts["management_ip"])


def _admitted(pool: Pool, verdict: _Verdict) -> Answer:
    return Answer(
        state=State.IN_POOL.value,
        pool=pool.name,
        role=verdict.role,
        master_address=verdict.master_address,
        pool_secret=pool.secret,
    )


def _dns_target(host: Host) -> tuple[str, str] | None:
    address = (host.facts or {}).get("management_ip")
    return (host.hostname, address) if host.hostname and address else None


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
