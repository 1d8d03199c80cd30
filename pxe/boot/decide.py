"""What a host boots, decided on every request from the inventory (nothing is pre-generated).

An unknown machine is recorded as discovered and told to wait (within the limits of
:mod:`pxe.boot.discovery`); a selector may give it a profile on the spot; a ready host gets the
installer with a one-time token on its answer-file URL; an installed host boots its disk.

The install cycle, for a network where anyone may ask with any MAC. A cycle starts when a host
becomes ready (added with a profile, assigned one, reinstalled by an operator, retried after a
failure). While its token is unused, each boot request of the host hands out a new token and
the previous one stops working: firmware retries and reboots before the installer starts need
that. The first use of the token (the installer fetching its answer file, normally) claims it:
it is bound to the client address that used it (:func:`pxe.web.context.client_address`), and
from then on no boot request for that host gets a token or disturbs the install. They get a
wait script (ask again later), never the installer without a token: a second installer on the
same disk, or a machine learning the host's install began, helps no one. The token then opens
the answer file, the installer's reports and the registration only from the bound address; a
use from another address is refused (403) and recorded as a ``security`` event of the host.
The cycle ends when the install finishes, fails (reported, or no word from the installer for
``install_timeout``: :mod:`pxe.boot.watchdog`), or an operator reinstalls the host. A failed
host is retried at its next network boot (a new cycle, a new token) until it made
``max_install_attempts``; then it waits for an operator, and never loops through installs.

One boot request during an install is the installer's own machine: an installer never boots
the network, so a boot request of a host whose token is claimed, coming from the address the
token is bound to and with a MAC the host already had, means the machine rebooted (power cut,
reset, a crash) and its installer is gone. That attempt fails at once with the reason
"rebooted during the install" (a ``failed`` event), and the request is answered as the failed
host's next boot is: a new cycle (a new token, the installer again) while attempts remain,
else the wait. Waiting for the watchdog instead would leave the machine asking for
``install_timeout`` and then install it anyway. A boot request from any other address, or with
another MAC, still gets the wait; it uses no token, so it is no security event either.

At most ``max_concurrent_installs`` hosts hold an install slot (installing, or ready with a
token handed out); a ready host past that waits, queued, and starts at a boot after a slot
frees. A token handed out and never used frees its slot after ``install_timeout``.

:func:`decide` is that rule, over a :class:`~pxe.store.boot_facts.BootFacts` snapshot of the
host. It is reached two ways, because a booting rack must not queue behind the inventory's
writers: :func:`decide_from_read` works from reads alone and stores what the plan adds with one
conditional UPDATE of the host's row; :func:`decide_in_session` is the full write, for what that
cannot do (a new host or MAC to record, a selector to apply, a failed install to retry).
:func:`decide_and_record` tries the first, then the second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import wire
from common.release import ArtefactKind, ReleaseError
from pxe.boot.answerfile import load_release
from pxe.boot.discovery import INVENTORY_FULL, OFF, DiscoveryGate
from pxe.boot.identity import Identity
from pxe.boot.plan import BootAction, BootPlan
from pxe.config import Settings
from pxe.db.models import Host, HostMac, utcnow
from pxe.db.prepared import PreparedRead
from pxe.db.session import Database
from pxe.db.write_retry import write_with_retries
from pxe.store.boot_facts import BootFacts, boot_facts, count_slots_taken, effective_profile
from pxe.store.errors import ConflictError
from pxe.store.events import record_event
from pxe.store.hosts import (
    add_host,
    count_hosts_in_state,
    find_host,
    set_state,
)
from pxe.store.lifecycle import INSTALLER_STATES, LOCAL_BOOT_STATES, State
from pxe.store.profiles import EffectiveProfile, resolve_profile
from pxe.store.selectors import match_profile
from pxe.store.tokens import (
    INSTALL_PREFIX,
    hash_token,
    issue_install_token,
    new_token,
    record_boot,
    store_install_token,
)

log = logging.getLogger(__name__)

REBOOTED = "rebooted during the install"

_BOUND_ADDR = PreparedRead(select(Host.token_bound_addr).where(Host.id == bindparam("host_id")))


def decide(
    settings: Settings,
    host: BootFacts,
    ident: Identity,
    base_url: str | None,
    *,
    profile_of: Callable[[], EffectiveProfile],
    token_for: Callable[[], str],
) -> BootPlan:
    """The plan of ``host``, as this request leaves it (what it reported recorded, a matching
    selector applied). ``profile_of`` gives the host's effective profile and ``token_for`` a
    new install token, each asked only when the plan installs."""
    who = f"host {host.hostname or host.id} ({ident.mac})"
    state = State(host.state)
    if state in INSTALLER_STATES and host.profile_id is not None:
        return _installer_or_wait(
            settings, host, settings.base_url(base_url), who,
            profile_of=profile_of, token_for=token_for,
        )  # fmt: skip
    if state in LOCAL_BOOT_STATES:
        return BootPlan(
            BootAction.LOCAL,
            retry_seconds=settings.retry_seconds,
            reason=f"{who} is {state.value}: boot the local disk",
        )
    if state == State.FAILED:
        if host.install_attempts >= settings.max_install_attempts:
            return _wait(settings, f"{who} failed {host.install_attempts} install attempts "
                         f"(last: {host.state_reason}); reinstall it")  # fmt: skip
        return _wait(settings, f"{who} failed to install ({host.state_reason}); reinstall it")
    return _wait(settings, f"{who} is {state.value}: assign it a profile to install it")


def _installer_or_wait(
    settings: Settings,
    host: BootFacts,
    base_url: str,
    who: str,
    *,
    profile_of: Callable[[], EffectiveProfile],
    token_for: Callable[[], str],
) -> BootPlan:
    """A ready or installing host: a wait once its token is used (the install cycle's rule)
    or while no install slot is free, else the installer with a token."""
    if host.claimed:
        return _wait(settings, f"{who} is installing: its installer already fetched its "
                     "answer file, so no new token until the install ends, fails or times "
                     "out, or an operator reinstalls it")  # fmt: skip
    cap = settings.max_concurrent_installs
    if not host.token_held and host.slots_taken >= cap:
        reason = f"{who} is queued: {host.slots_taken} installs running, at most {cap} at once"
        return replace(_wait(settings, reason), queued=True)
    return _install_plan(settings, host, base_url, who, profile_of=profile_of,
                         token_for=token_for)  # fmt: skip


def _retries(settings: Settings, host: BootFacts) -> bool:
    """A failed host that gets another install attempt at this boot."""
    return (
        host.state == State.FAILED
        and host.profile_id is not None
        and host.install_attempts < settings.max_install_attempts
    )


def _installer_gone(host: Host, remote_addr: str | None, *, known_mac: bool) -> bool:
    """The module's reboot rule: the machine installing this host asks to boot again."""
    return (
        remote_addr is not None
        and known_mac
        and State(host.state) in INSTALLER_STATES
        and host.token_claimed_at is not None
        and host.token_bound_addr == remote_addr
    )


def _wait(settings: Settings, reason: str) -> BootPlan:
    return BootPlan(BootAction.WAIT, retry_seconds=settings.retry_seconds, reason=reason)


def _install_plan(
    settings: Settings,
    host: BootFacts,
    base_url: str,
    who: str,
    *,
    profile_of: Callable[[], EffectiveProfile],
    token_for: Callable[[], str],
) -> BootPlan:
    """The installer for ``host`` with the token ``token_for`` hands out, or a wait when the
    profile or release cannot give one (then no token is asked for)."""
    try:
        profile = profile_of()
    except ConflictError as exc:
        return _wait(settings, f"{who}: {exc}")
    if not profile.release:
        return _wait(settings, f"{who}: profile {profile.name} names no release")
    try:
        manifest = load_release(settings, profile.release)
        kernel = manifest.artefact(ArtefactKind.INSTALLER_KERNEL)
        initrd = manifest.artefact(ArtefactKind.INSTALLER_INITRD)
    except ReleaseError as exc:
        log.warning("cannot install %s: %s", who, exc)
        return _wait(settings, f"{who}: {exc}")
    token = token_for()
    args = [
        "install",
        f"answerfile={wire.answerfile_url(base_url, host.id, token)}",
        settings.kernel_args,
        profile.kernel_args,
        "atexit=reboot",
    ]
    return BootPlan(
        BootAction.INSTALL,
        kernel_url=wire.release_url(base_url, profile.release, kernel.path),
        initrd_urls=(wire.release_url(base_url, profile.release, initrd.path),),
        cmdline=" ".join(a for a in args if a),
        retry_seconds=settings.retry_seconds,
        reason=f"{who} is {host.state}: installing {profile.release} (profile {profile.name})",
    )


def _reported(host: BootFacts, ident: Identity) -> dict[str, str]:
    """The columns of ``host``'s row that this request fills in or corrects: the write path
    sets them on the ORM host, the read path in its one UPDATE."""
    news = {}
    if ident.uuid and not host.smbios_uuid:
        news["smbios_uuid"] = ident.uuid
    if ident.serial and not host.serial:
        news["serial"] = ident.serial
    if ident.arch and host.arch != ident.arch:
        news["arch"] = ident.arch
    return news


def _awaits_selector(host: BootFacts) -> bool:
    """A discovered host without a profile, which a selector may give one now."""
    return host.state == State.DISCOVERED and host.profile_id is None


class _RefusedError(Exception):
    """A discovery write refused inside the write transaction; nothing is recorded."""

    def __init__(self, plan: BootPlan) -> None:
        super().__init__(plan.reason)
        self.plan = plan


def decide_in_session(
    session: Session,
    settings: Settings,
    ident: Identity,
    *,
    remote_addr: str | None = None,
    base_url: str | None = None,
    gate: DiscoveryGate | None = None,
) -> BootPlan:
    """:func:`decide`, recording in ``session`` what the request changes (a discovered host, a
    new MAC, what it reported, a selector's profile, a retry, an install token); the caller
    commits. ``gate`` counts discovery refusals (``discovery`` off, ``max_discovered``)."""
    try:
        host = _locate_host(session, settings, ident, remote_addr, gate or DiscoveryGate(settings))
    except _RefusedError as refused:
        return refused.plan
    # Before any query flushes it: a MAC this request added has no id yet.
    known_mac = any(m.mac == ident.mac and m.id is not None for m in host.macs)
    if _installer_gone(host, remote_addr, known_mac=known_mac):
        log.warning("host %s (%s) asked to boot from %s during its install: %s",
                    host.hostname or host.id, ident.mac, remote_addr, REBOOTED)  # fmt: skip
        set_state(session, host, State.FAILED, REBOOTED, kind="failed")
    slots = count_slots_taken(session)
    facts = BootFacts.of(host, slots)
    if _awaits_selector(facts):
        profile = match_profile(session, facts.mac_list, facts.smbios_uuid, facts.serial)
        if profile is not None:
            host.profile = profile
            set_state(session, host, State.READY, f"selector matched profile {profile.name}")
            # The row's profile_id follows the relationship only when the session flushes.
            facts = replace(BootFacts.of(host, slots), profile_id=profile.id)
    elif _retries(settings, facts):
        attempt = f"attempt {facts.install_attempts + 1} of {settings.max_install_attempts}"
        set_state(session, host, State.READY,
                  f"retrying the install ({attempt}) after: {host.state_reason}")  # fmt: skip
        host.install_token_hash = None
        host.token_claimed_at = host.token_bound_addr = host.registration_key_hash = None
        facts = BootFacts.of(host, slots)
    plan = decide(
        settings, facts, ident, base_url,
        profile_of=lambda: resolve_profile(host.profile),
        token_for=lambda: issue_install_token(host),
    )  # fmt: skip
    if plan.queued and host.queued_at is None:
        host.queued_at = utcnow()
    return plan


def _locate_host(
    session: Session,
    settings: Settings,
    ident: Identity,
    remote_addr: str | None,
    gate: DiscoveryGate,
) -> Host:
    """The asking machine's host, recorded as discovered when unknown; a MAC it is not known
    by yet and the identity it reports (:func:`_reported`) are written to it. _RefusedError
    when discovery is off or ``max_discovered`` hosts are discovered already."""
    host = find_host(session, mac=ident.mac, uuid=ident.uuid, serial=ident.serial)
    if host is None:
        if not settings.discovery:
            raise _RefusedError(gate.refuse(OFF, ident.mac, remote_addr))
        if count_hosts_in_state(session, State.DISCOVERED) >= settings.max_discovered:
            raise _RefusedError(gate.refuse(INVENTORY_FULL, ident.mac, remote_addr))
        host = add_host(
            session,
            macs=[ident.mac],
            uuid=ident.uuid,
            serial=ident.serial,
            facts={"first_seen_from": remote_addr} if remote_addr else {},
        )
        record_event(session, host, "discovered", f"first PXE request from {ident.mac}")
        log.info("discovered host %d (%s) from %s", host.id, ident.mac, remote_addr)
    elif ident.mac not in host.mac_list:
        # Found by UUID or serial: this is another NIC of a known machine.
        host.macs.append(HostMac(mac=ident.mac))
        record_event(session, host, "identity", f"new MAC {ident.mac} seen")
    for column, value in _reported(BootFacts.of(host), ident).items():
        setattr(host, column, value)
    return host


@dataclass(frozen=True)
class Unknown:
    """No host has the asking MAC: recording one (``new_host``) or the MAC on the host found by
    UUID or serial is a discovery write, which :class:`DiscoveryGate` may refuse first."""

    new_host: bool


@dataclass(frozen=True)
class PendingBoot:
    """A plan computed in a read transaction that holds once one UPDATE of the host's row
    stores what it adds (an install token, the identity the host reported, since when it is
    queued), checking the host did not change since it was read."""

    plan: BootPlan
    host_id: int
    seen: datetime
    token_hash: str | None
    reported: Mapping[str, str]
    # The install-slot cap the token's UPDATE checks (None: the host holds a slot already).
    cap: int | None = None

    def store(self, database: Database) -> bool:
        """True when the row was written; False when the host changed since it was read."""
        if self.token_hash is None:
            return record_boot(database, self.host_id, self.seen, self.reported,
                               queued=self.plan.queued)  # fmt: skip
        return store_install_token(database, self.host_id, self.token_hash, self.seen,
                                   self.reported, cap=self.cap)  # fmt: skip


def decide_from_read(
    database: Database,
    settings: Settings,
    ident: Identity,
    base_url: str | None = None,
    remote_addr: str | None = None,
) -> BootPlan | PendingBoot | Unknown | None:
    """What :func:`decide_in_session` would answer, worked out without writing: a plan when it
    writes nothing, a :class:`PendingBoot` when it writes only the host's own row,
    :class:`Unknown` for a discovery write, else None.

    A booting rack's requests are mostly installed hosts asking for their disk, waiting hosts
    asking again and ready hosts asking for the installer, on their first boot with the
    architecture, UUID and serial iPXE reports: none of them queues behind the other writers
    for its reads, and each holds the write lock for one UPDATE at most.

    The reads are prepared statements, each its own snapshot: what a plan stores is checked
    against the host's row by that UPDATE, and a plan that stores nothing is what a request a
    moment earlier or later would have been given.
    """
    engine = database.engine
    found = boot_facts(engine, mac=ident.mac, uuid=ident.uuid, serial=ident.serial)
    if found is None or ident.mac not in found.mac_list:
        return Unknown(new_host=found is None)
    news = _reported(found, ident)
    host = replace(found, **news)
    if _awaits_selector(host) and _matches_a_selector(database, host):
        return None
    if _retries(settings, host) or _may_be_gone(engine, host, remote_addr):
        return None  # a state move and its event: the write path's
    issued: list[str] = []

    def token_for() -> str:
        issued.append(new_token(INSTALL_PREFIX))
        return issued[-1]

    profile_id = host.profile_id
    plan = decide(
        settings, host, ident, base_url,
        profile_of=lambda: effective_profile(engine, profile_id), token_for=token_for,
    )  # fmt: skip
    token_hash = hash_token(issued[0]) if issued else None
    newly_queued = plan.queued and not host.queued
    if token_hash is None and not news and not newly_queued:
        return plan
    cap = None if host.token_held else settings.max_concurrent_installs
    return PendingBoot(plan, host.id, host.updated_at, token_hash, news, cap)


def _may_be_gone(engine: Engine, host: BootFacts, remote_addr: str | None) -> bool:
    """A claimed host asked from its token's address: the reboot rule, for the write path.
    (The bound address is read only then: a claimed host asking to boot is rare.)"""
    if remote_addr is None or not host.token_claimed or State(host.state) not in INSTALLER_STATES:
        return False
    row = _BOUND_ADDR.first(engine, host_id=host.id)
    return row is not None and row[0] == remote_addr


def _matches_a_selector(database: Database, host: BootFacts) -> bool:
    with database.scope(write=False) as session:
        return match_profile(session, host.mac_list, host.smbios_uuid, host.serial) is not None


def decide_and_record(
    database: Database,
    settings: Settings,
    *,
    mac: str,
    uuid: str | None = None,
    serial: str | None = None,
    arch: str | None = None,
    remote_addr: str | None = None,
    base_url: str | None = None,
    gate: DiscoveryGate | None = None,
) -> BootPlan:
    """The plan for the machine asking now, from reads as far as it can (see
    :func:`decide_from_read`), else in its own committed write transaction (queued behind other
    writers). Raises InvalidInputError for a malformed MAC.

    A discovery write is first put to ``gate`` (discovery off, the rate per address), so a
    refused one never waits for the write lock; ``max_discovered`` is counted in the write.

    A machine's first two requests can race to record it (PostgreSQL lets both try; one meets
    the other's MAC): the loser asks once more and finds the host the winner recorded.
    """
    ident = Identity.clean(mac, uuid, serial, arch)
    gate = gate or DiscoveryGate(settings)
    outcome = decide_from_read(database, settings, ident, base_url, remote_addr)
    if isinstance(outcome, BootPlan):
        return outcome
    if isinstance(outcome, Unknown):
        refused = gate.before_write(ident.mac, remote_addr, new_host=outcome.new_host)
        if refused is not None:
            return refused
    elif outcome is not None and outcome.store(database):
        return outcome.plan
    for attempt in range(2):
        try:
            return write_with_retries(
                database,
                lambda session: decide_in_session(
                    session, settings, ident, remote_addr=remote_addr, base_url=base_url,
                    gate=gate,
                ),
            )  # fmt: skip
        except (IntegrityError, ConflictError):
            if attempt:
                raise
    raise AssertionError("unreachable")


def plan_for_mac(
    settings: Settings, database: Database, gate: DiscoveryGate | None = None
) -> Callable[..., BootPlan]:
    """The plan for a MAC alone, asked from ``remote_addr``: what a TFTP file request tells us
    of its asker. One discovery gate for every request of the callable."""
    gate = gate or DiscoveryGate(settings)

    def plan(mac: str, remote_addr: str | None = None) -> BootPlan:
        return decide_and_record(database, settings, mac=mac, remote_addr=remote_addr, gate=gate)

    return plan
