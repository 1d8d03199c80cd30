"""What a host boots, decided on every request from the inventory (nothing is pre-generated).

Every boot protocol asks here: the iPXE script over HTTP, and pxelinux or GRUB files over
TFTP. An unknown machine is recorded as discovered and told to wait; a selector may give it a
profile on the spot; a ready host gets the installer with a fresh one-time token on its answer-file
URL; an installed host boots its disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from answerfiles.render import render_template
from common import release
from common.release import ArtefactKind, Manifest, ReleaseError
from pxe.bootplan import BootAction, BootPlan
from pxe.config import Settings
from pxe.db.models import Host, HostMac
from pxe.db.session import Database
from pxe.lifecycle import INSTALLER_STATES, LOCAL_BOOT_STATES, State
from pxe.store.boot_facts import BootFacts, boot_facts, effective_profile
from pxe.store.errors import ConflictError, InvalidInputError
from pxe.store.events import record_event
from pxe.store.hosts import (
    AnswerFileHost,
    add_host,
    find_host,
    normalise_uuid,
    set_state,
    update_unchanged_host,
)
from pxe.store.macs import normalise_mac
from pxe.store.profiles import EffectiveProfile, resolve_profile
from pxe.store.selectors import match_profile
from pxe.store.tokens import (
    INSTALL_PREFIX,
    hash_token,
    issue_install_token,
    new_token,
    store_install_token,
)
from pxe.write_retry import write_alone, write_with_retries

log = logging.getLogger(__name__)

# Firmware placeholders many boards ship instead of a real identity; never match hosts on them.
_JUNK_UUIDS = frozenset(
    {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}
)
_JUNK_SERIAL = re.compile(
    r"^(|0+|1234567890|0123456789|default string|to be filled by o\.e\.m\.|not specified|"
    r"system serial number|none|n/a)$",
    re.IGNORECASE,
)
_DEFAULT_DISK = "sda"


@dataclass(frozen=True)
class Identity:
    """What a booting machine told us about itself, cleaned of firmware junk."""

    mac: str
    uuid: str | None = None
    serial: str | None = None
    arch: str | None = None


def clean_identity(
    mac: str, uuid: str | None = None, serial: str | None = None, arch: str | None = None
) -> Identity:
    """Raises InvalidInputError for a malformed MAC; drops a malformed or placeholder UUID and
    serial (iPXE sends what the firmware has, which is often nothing useful)."""
    clean_uuid = None
    if uuid:
        try:
            clean_uuid = normalise_uuid(uuid)
        except InvalidInputError:
            clean_uuid = None
        if clean_uuid in _JUNK_UUIDS:
            clean_uuid = None
    clean_serial = serial.strip()[:128] if serial else None
    if clean_serial is not None and _JUNK_SERIAL.match(clean_serial):
        clean_serial = None
    clean_arch = re.sub(r"[^A-Za-z0-9_-]", "", arch)[:32] if arch else None
    return Identity(normalise_mac(mac), clean_uuid, clean_serial, clean_arch or None)


def _locate_host(session: Session, ident: Identity, remote_addr: str | None) -> Host:
    host = find_host(session, mac=ident.mac, uuid=ident.uuid, serial=ident.serial)
    if host is None:
        host = add_host(
            session,
            macs=[ident.mac],
            uuid=ident.uuid,
            serial=ident.serial,
            facts={"first_seen_from": remote_addr} if remote_addr else {},
        )
        host.arch = ident.arch
        record_event(session, host, "discovered", f"first PXE request from {ident.mac}")
        log.info("discovered host %d (%s) from %s", host.id, ident.mac, remote_addr)
        return host
    if ident.mac not in host.mac_list:
        # Found by UUID or serial: this is another NIC of a known machine.
        host.macs.append(HostMac(mac=ident.mac))
        record_event(session, host, "identity", f"new MAC {ident.mac} seen")
    if ident.uuid and not host.smbios_uuid:
        host.smbios_uuid = ident.uuid
    if ident.serial and not host.serial:
        host.serial = ident.serial
    if ident.arch and host.arch != ident.arch:
        host.arch = ident.arch
    return host


@dataclass(frozen=True)
class _CachedManifest:
    mtime_ns: int
    manifest: Manifest


_manifests: dict[Path, _CachedManifest] = {}
_manifests_lock = threading.Lock()


def load_release(settings: Settings, name: str) -> Manifest:
    """The release's manifest, re-read only when the file changed (boot storms ask a lot)."""
    path = settings.releases_dir / name / release.MANIFEST
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError as exc:
        raise ReleaseError(f"release {name!r} is not in {settings.releases_dir}") from exc
    with _manifests_lock:
        cached = _manifests.get(path)
        if cached is not None and cached.mtime_ns == mtime:
            return cached.manifest
    manifest = release.load(path.parent)
    with _manifests_lock:
        _manifests[path] = _CachedManifest(mtime, manifest)
    return manifest


def release_url(base_url: str, name: str, rel_path: str = "") -> str:
    return f"{base_url}/releases/{name}/{rel_path}"


def answerfile_url(base_url: str, host_id: int, token: str) -> str:
    return f"{base_url}/answerfile/{host_id}?token={token}"


def _wait(settings: Settings, reason: str) -> BootPlan:
    return BootPlan(BootAction.WAIT, retry_seconds=settings.retry_seconds, reason=reason)


def _install_plan(
    settings: Settings,
    host: Host | BootFacts,
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
        f"answerfile={answerfile_url(base_url, host.id, token)}",
        settings.kernel_args,
        profile.kernel_args,
        "atexit=reboot",
    ]
    return BootPlan(
        BootAction.INSTALL,
        kernel_url=release_url(base_url, profile.release, kernel.path),
        initrd_urls=(release_url(base_url, profile.release, initrd.path),),
        cmdline=" ".join(a for a in args if a),
        retry_seconds=settings.retry_seconds,
        reason=f"{who} is {host.state}: installing {profile.release} (profile {profile.name})",
    )


def _reported(host: Host | BootFacts, ident: Identity) -> dict[str, str]:
    """The columns of ``host``'s row that this request fills in or corrects: what
    :func:`_locate_host` writes for a known MAC."""
    news = {}
    if ident.uuid and not host.smbios_uuid:
        news["smbios_uuid"] = ident.uuid
    if ident.serial and not host.serial:
        news["serial"] = ident.serial
    if ident.arch and host.arch != ident.arch:
        news["arch"] = ident.arch
    return news


def _plan_without_install(settings: Settings, host: Host | BootFacts, who: str) -> BootPlan:
    """The plan of a host that does not boot the installer now (no token to hand out)."""
    state = State(host.state)
    if state in LOCAL_BOOT_STATES:
        return BootPlan(
            BootAction.LOCAL,
            retry_seconds=settings.retry_seconds,
            reason=f"{who} is {state.value}: boot the local disk",
        )
    if state == State.FAILED:
        return _wait(settings, f"{who} failed to install ({host.state_reason}); reinstall it")
    return _wait(settings, f"{who} is {state.value}: assign it a profile to install it")


def decide(
    session: Session,
    settings: Settings,
    *,
    mac: str,
    uuid: str | None = None,
    serial: str | None = None,
    arch: str | None = None,
    remote_addr: str | None = None,
    base_url: str | None = None,
) -> BootPlan:
    """The BootPlan for the machine asking now. Writes to ``session`` (discovery, token); the
    caller commits. Raises InvalidInputError for a malformed MAC."""
    ident = clean_identity(mac, uuid, serial, arch)
    host = _locate_host(session, ident, remote_addr)
    who = f"host {host.hostname or host.id} ({ident.mac})"
    if host.state == State.DISCOVERED and host.profile is None:
        profile = match_profile(session, host.mac_list, host.smbios_uuid, host.serial)
        if profile is not None:
            host.profile = profile
            set_state(session, host, State.READY, f"selector matched profile {profile.name}")
    if State(host.state) in INSTALLER_STATES and host.profile is not None:
        profile = host.profile
        return _install_plan(
            settings, host, settings.base_url(base_url), who,
            profile_of=lambda: resolve_profile(profile),
            token_for=lambda: issue_install_token(host),
        )  # fmt: skip
    return _plan_without_install(settings, host, who)


@dataclass(frozen=True)
class PendingBoot:
    """A plan computed in a read transaction that holds once one UPDATE of the host's row
    stores what it adds (an install token, the identity the host reported), checking the host
    did not change since it was read."""

    plan: BootPlan
    host_id: int
    seen: datetime
    token_hash: str | None
    reported: Mapping[str, str]

    def store(self, database: Database) -> bool:
        """True when the row was written; False when the host changed since it was read."""
        if self.token_hash is None:
            statement = update_unchanged_host(self.host_id, self.seen, self.reported)
        else:
            statement = store_install_token(
                self.host_id, self.token_hash, self.seen, self.reported
            )
        return write_alone(database, statement) == 1


def decide_from_read(
    database: Database,
    settings: Settings,
    *,
    mac: str,
    uuid: str | None = None,
    serial: str | None = None,
    arch: str | None = None,
    base_url: str | None = None,
    **_request: Any,
) -> BootPlan | PendingBoot | None:
    """What :func:`decide` would answer, worked out without writing: a plan when it writes
    nothing, a :class:`PendingBoot` when it writes only the host's own row, else None.

    A booting rack's requests are mostly installed hosts asking for their disk, waiting hosts
    asking again and ready hosts asking for the installer, on their first boot with the
    architecture, UUID and serial iPXE reports: none of them queues behind the other writers
    for its reads, and each holds the write lock for one UPDATE at most.

    The reads are prepared statements, each its own snapshot: what a plan stores is checked
    against the host's row by that UPDATE, and a plan that stores nothing is what a request a
    moment earlier or later would have been given.
    """
    ident = clean_identity(mac, uuid, serial, arch)
    engine = database.engine
    host = boot_facts(engine, mac=ident.mac, uuid=ident.uuid, serial=ident.serial)
    if host is None or ident.mac not in host.mac_list:
        return None
    reported = _reported(host, ident)
    who = f"host {host.hostname or host.id} ({ident.mac})"
    state = State(host.state)
    profile_id = host.profile_id
    if state in INSTALLER_STATES and profile_id is not None:
        issued: list[str] = []

        def token_for() -> str:
            issued.append(new_token(INSTALL_PREFIX))
            return issued[-1]

        plan = _install_plan(
            settings, host, settings.base_url(base_url), who,
            profile_of=lambda: effective_profile(engine, profile_id), token_for=token_for,
        )  # fmt: skip
        token_hash = hash_token(issued[0]) if issued else None
    elif state == State.DISCOVERED and profile_id is None and _matches_a_selector(
        database, host.mac_list, host.smbios_uuid or ident.uuid, host.serial or ident.serial
    ):
        return None
    else:
        plan, token_hash = _plan_without_install(settings, host, who), None
    if token_hash is None and not reported:
        return plan
    return PendingBoot(plan, host.id, host.updated_at, token_hash, reported)


def _matches_a_selector(
    database: Database, macs: tuple[str, ...], uuid: str | None, serial: str | None
) -> bool:
    with database.scope(write=False) as session:
        return match_profile(session, macs, uuid, serial) is not None


def decide_and_record(database: Database, settings: Settings, **request: Any) -> BootPlan:
    """:func:`decide`, from reads as far as it can (see :func:`decide_from_read`),
    else in its own committed write transaction (queued behind other writers).

    A machine's first two requests can race to record it (PostgreSQL lets both try; one meets
    the other's MAC): the loser asks once more and finds the host the winner recorded.
    """
    outcome = decide_from_read(database, settings, **request)
    if isinstance(outcome, BootPlan):
        return outcome
    if outcome is not None and outcome.store(database):
        return outcome.plan
    for attempt in range(2):
        try:
            return write_with_retries(
                database, lambda session: decide(session, settings, **request)
            )
        except (IntegrityError, ConflictError):
            if attempt:
                raise
    raise AssertionError("unreachable")


def answerfile_variables(
    settings: Settings,
    host: AnswerFileHost,
    profile: EffectiveProfile,
    token: str,
    base_url: str,
) -> dict[str, Any]:
    """Template variables: defaults, then the profile's variables, then the host's identity and
    our extension (server URL, token, pool), which a profile cannot override."""
    variables: dict[str, Any] = {
        "primary_disk": profile.disk_rule.get("disk", _DEFAULT_DISK),
        "hostname": f"host-{host.id}",
    }
    variables.update(profile.variables)
    if host.hostname:
        variables["hostname"] = host.hostname
    if host.mac:
        variables.setdefault("mac", host.mac)
    variables.update(
        server_url=settings.base_url(base_url),
        token=token,
        pool=host.effective_pool or "",
        source_url=release_url(settings.base_url(base_url), profile.release or ""),
    )
    return variables


# (data dir, template text) -> the file holding that text: hashing and resolving once per text.
_inline_templates: dict[tuple[Path, str], str] = {}


def template_reference(settings: Settings, template: str) -> str:
    """A bundled name or path as is; template text is kept in ``<data>/templates`` under its
    digest so the renderer can load (and cache) it like any template file.

    Each text is hashed once per process; the file is still checked on every call (one stat),
    so one removed behind our back is written again.
    """
    if "<" not in template and "\n" not in template:
        return template
    key = (settings.data_dir, template)
    known = _inline_templates.get(key)
    if known is not None and os.path.isfile(known):
        return known
    digest = hashlib.sha256(template.encode()).hexdigest()[:24]
    path = settings.data_dir / "templates" / f"inline-{digest}.xml.j2"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(template)
        os.replace(tmp, path)
    _inline_templates[key] = str(path.resolve())
    return _inline_templates[key]


class AnswerFileUnavailableError(ConflictError):
    """The host cannot be given an answer file now (no profile, no template, no release)."""


def host_answerfile(settings: Settings, host: Host, token: str, base_url: str | None = None) -> str:
    """The host's rendered, validated answer file, from a loaded ORM host (the dashboard's
    preview). RenderError (from answerfiles) when the profile's template does not give a valid
    one."""
    return answerfile_for(settings, AnswerFileHost.of(host), token, base_url)


def answerfile_for(
    settings: Settings, host: AnswerFileHost, token: str, base_url: str | None = None
) -> str:
    """:func:`host_answerfile` for a host read by :func:`pxe.store.hosts.answerfile_host` (the
    path every installing host takes: one query, no ORM objects)."""
    who = f"host {host.hostname or host.id}"
    if host.profile is None:
        raise AnswerFileUnavailableError(f"{who} has no profile, so no answer file")
    profile = host.profile.profile
    if not profile.template:
        raise AnswerFileUnavailableError(f"{who}: profile {profile.name} names no template")
    if not profile.release:
        raise AnswerFileUnavailableError(f"{who}: profile {profile.name} names no release")
    variables = answerfile_variables(settings, host, profile, token, base_url or "")
    template = template_reference(settings, profile.template)
    return render_template(template, variables, host=host.hostname or str(host.id))
