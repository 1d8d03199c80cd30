"""``<source type="local"/>``: a release on a medium attached to the host, found by its label.

XCP-ng's ``local`` is its install disc. This installer boots from the network, so the medium is
whatever the operator attached: a USB stick, a BMC's virtual media, a spare disk. It carries a
filesystem labelled ``XCP_RELEASE`` (ext2/3/4, vfat or ISO 9660) with a release at its top:
``manifest.json`` and the files it names, as ``xcp-provision images`` writes them, signature
included. It is found with blkid (no udev needed), mounted read-only for the length of the
install, and its disk joins the installer's own disks, which no plan may write. Exactly one such
filesystem may be attached: with two, the release installed would depend on probe order.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from common import runner
from common.errors import CommandError
from common.release import LOCAL_MEDIA_LABEL, MANIFEST
from installer import discovery
from installer.block import blkid
from installer.errors import RefusedError
from installer.mounts import mounted

# Journalled ext filesystems replay their journal even on a read-only mount unless told not to;
# a release medium is read, never written.
_NO_JOURNAL_REPLAY = {"ext3": "ro,noload", "ext4": "ro,noload"}


class LocalMediaError(RefusedError):
    """No usable release medium: none, several, or one without a release on it."""


@dataclass(frozen=True)
class LocalRelease:
    device: str
    path: Path  # where the release's manifest.json is, for the install's length
    disks: tuple[str, ...]  # the whole disk(s) under it: never an install target


def find_devices(label: str = LOCAL_MEDIA_LABEL) -> tuple[str, ...]:
    """Every block device holding a filesystem labelled ``label`` (no blkid cache: fresh)."""
    result = runner.run(
        ["blkid", "-c", "/dev/null", "-t", f"LABEL={label}", "-o", "device"], check=False
    )
    return tuple(sorted(result.stdout.split()))


def mount_local_release(stack: ExitStack, label: str = LOCAL_MEDIA_LABEL) -> LocalRelease:
    """Find and mount the release medium; it stays mounted until ``stack`` closes."""
    devices = find_devices(label)
    fix = f'attach one medium labelled {label} holding a release, or use <source type="url">'
    if not devices:
        raise LocalMediaError(
            f'<source type="local"/> names the release medium, but no '
            f"filesystem labelled {label} is attached; {fix}"
        )
    if len(devices) > 1:
        raise LocalMediaError(
            f"{len(devices)} filesystems are labelled {label} "
            f"({', '.join(devices)}), so the release to install is ambiguous; "
            "detach all but one"
        )
    device = devices[0]
    fstype = blkid.probe(device).get("TYPE", "")
    try:
        path = stack.enter_context(mounted(device, options=_NO_JOURNAL_REPLAY.get(fstype, "ro")))
    except CommandError as exc:
        raise LocalMediaError(
            f"cannot mount the release medium {device} ({fstype or 'unknown'} "
            f"filesystem) read-only: {exc}"
        ) from exc
    if not (path / MANIFEST).is_file():
        raise LocalMediaError(
            f"the release medium {device} (labelled {label}) has no {MANIFEST} "
            "at its top; copy a release directory's contents onto it"
        )
    return LocalRelease(device, path, discovery.installer_disks(str(path / MANIFEST)))
