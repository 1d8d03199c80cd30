"""A host's answer file, and the release manifests both it and the boot plan read.

The installer a boot plan starts fetches its answer file from us with the token the plan put on
its command line; both need the release's manifest, which a boot storm asks for on every
request, so it is cached here by file modification time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from answerfiles.render import render_template
from common import release, wire
from common.release import Manifest, ReleaseError
from pxe.config import Settings
from pxe.db.models import Host
from pxe.store.errors import ConflictError
from pxe.store.hosts import AnswerFileHost
from pxe.store.profiles import EffectiveProfile

_DEFAULT_DISK = "sda"


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
        source_url=wire.release_url(settings.base_url(base_url), profile.release or ""),
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
