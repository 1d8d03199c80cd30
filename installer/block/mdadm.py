"""Software RAID1 with ``mdadm``: make a mirror, and read back what the kernel made of it.

XCP-ng's installer mirrors whole disks with md metadata 1.0, and so do we: that version keeps
its superblock at the end of each member and the array's data from the member's first sector
(data offset 0), so each member's start reads as a plain disk. The firmware and GRUB's BIOS boot
code see on either member the array's own partition table, BIOS boot partition and ESP.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.runner import run
from installer.errors import FailedError

METADATA = "1.0"
_SYS_BLOCK = Path("/sys/class/block")


class RaidError(FailedError):
    """The array could not be made as planned, or is not what was asked for."""


@dataclass(frozen=True)
class Array:
    """An md array as the kernel runs it: ``uuid`` in mdadm's colon form, ``name`` as in its
    superblock (``host:127``), ``members`` by device path, ``size_bytes`` of data."""

    device: str
    uuid: str
    name: str
    metadata: str
    level: str
    members: tuple[str, ...]
    size_bytes: int


def create_mirror(device: str, members: Sequence[str], *, size_bytes: int, homehost: str) -> Array:
    """RAID1 ``device`` of ``members`` using ``size_bytes`` of each (a whole number of KiB).

    ``--run`` starts it at once, without asking about what the members seem to hold (they were
    just wiped); the first resync then runs in the background while the install goes on.
    ``homehost`` prefixes the array's name, so the host it is made for finds the array its own.
    """
    if size_bytes % 1024:
        raise RaidError(f"the size of {device} ({size_bytes} bytes) is not a whole number of KiB")
    run(
        [
            "mdadm", "--create", device, "--run", f"--metadata={METADATA}", "--level=mirror",
            f"--raid-devices={len(members)}", f"--size={size_bytes // 1024}",
            f"--homehost={homehost}", *members,
        ]
    )  # fmt: skip
    return detail(device)


def detail(device: str) -> Array:
    """What ``mdadm --detail --export`` and sysfs say about the running array ``device``."""
    values = _export(run(["mdadm", "--detail", "--export", device]).stdout)
    members = tuple(
        value for key, value in sorted(values.items())
        if key.startswith("MD_DEVICE_") and key.endswith("_DEV")
    )  # fmt: skip
    try:
        return Array(
            device=device,
            uuid=values["MD_UUID"],
            name=values.get("MD_NAME", ""),
            metadata=values["MD_METADATA"],
            level=values["MD_LEVEL"],
            members=members,
            size_bytes=int(_sysfs(device, "size")) * 512,
        )
    except KeyError as exc:
        raise RaidError(f"mdadm --detail --export {device} does not give {exc.args[0]}") from exc


def by_id_link(array: Array) -> str:
    """The array's stable name under ``/dev/disk/by-id`` as udev's md rules make it: the first
    of its links there (``md-name-`` sorts before ``md-uuid-``), which is the one XCP-ng's
    installer records for a RAID primary disk; by UUID when the array has no name."""
    if array.name:
        return f"/dev/disk/by-id/md-name-{array.name}"
    return f"/dev/disk/by-id/md-uuid-{array.uuid}"


def state(device: str) -> str | None:
    """The md device's ``array_state`` (``clear`` once stopped), None when there is none."""
    path = _SYS_BLOCK / Path(device).name / "md/array_state"
    try:
        return path.read_text().strip()
    except OSError:
        return None


def data_offset_bytes(device: str, member: str) -> int:
    """Where the array's data starts on ``member`` (0 for metadata 1.0), from md's sysfs."""
    name = Path(os.path.realpath(member)).name
    return int(_sysfs(device, f"md/dev-{name}/offset")) * 512


def _sysfs(device: str, attribute: str) -> str:
    path = _SYS_BLOCK / Path(os.path.realpath(device)).name / attribute
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RaidError(f"cannot read {path} for {device}: {exc.strerror}") from exc


def _export(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values
