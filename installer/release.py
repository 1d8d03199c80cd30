"""The release an answer file points at: found, read and checked before any write.

Fresh install and upgrade both lay a release down, and both must refuse a source they cannot use
while the disk is still untouched, so finding and checking it is one rule shared by both. It
takes two steps because a plan sits between them: ``open_source`` picks the source (mounting a
local medium, whose disk the plan must then leave alone), ``load_release`` reads the manifest
and checks its signature when the answer file and the installer's keyring ask for one.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from answerfiles.model import AnswerFile, Source, SourceType
from common.release import MANIFEST, ArtefactKind, Manifest
from installer import fetch, local_media, release_trust
from installer.errors import RefusedError

log = logging.getLogger(__name__)

# Without these two the laid-down root cannot boot.
REQUIRED = (ArtefactKind.HYPERVISOR, ArtefactKind.DOM0_ROOTFS)


class SourceRefusedError(RefusedError):
    """The answer file's product source cannot be used."""


@dataclass(frozen=True)
class ReleaseSource:
    """Where the release is read from, for the install's length."""

    source: Source
    base: str  # a URL, or the directory of a mounted medium
    disks: tuple[str, ...] = ()  # disks holding the release: never an install target


def open_source(answers: AnswerFile, media: ExitStack) -> ReleaseSource:
    """The answer file's source; a local medium is mounted until ``media`` closes."""
    for source in answers.sources:
        if source.type is SourceType.URL and source.location:
            return ReleaseSource(source, source.location)
        if source.type is SourceType.LOCAL:
            found = local_media.mount_local_release(media)
            log.info("release medium %s mounted on %s", found.device, found.path)
            return ReleaseSource(source, str(found.path), found.disks)
    kinds = ", ".join(s.type.value for s in answers.sources) or "none"
    raise SourceRefusedError(
        f"the answer file names no source this installer can read (found: {kinds}); point "
        '<source type="url"> at a release directory holding manifest.json, or use '
        '<source type="local"/> with the release medium attached'
    )


def load_release(
    answers: AnswerFile, source: ReleaseSource, *, keyring: Path | Literal["site"] | None = "site"
) -> tuple[str, Manifest]:
    """The release's base and manifest; refused when it lacks what a host needs to boot, or
    when its signature is missing or bad and a check is asked for. ``keyring``: the site keys
    to check with; ``"site"`` is the installer's own (``release_trust.site_keyring()``)."""
    ring = release_trust.site_keyring() if keyring == "site" else keyring
    decision = release_trust.decide(answers, source.source, ring)
    base = source.base
    data = fetch.read_release_file(base, MANIFEST)
    manifest = fetch.parse_manifest(data, base)
    release_trust.check(base, data, manifest, decision)
    missing = [k.value for k in REQUIRED if not manifest.has(k)]
    if missing:
        raise SourceRefusedError(
            f"release {manifest.name!r} at {fetch.shown(base)} lacks {', '.join(missing)}, "
            "so it cannot be installed"
        )
    return base, manifest
