"""Filesystems the plan asks for, each with its label (fstab and the kernel command line find
them by label).

root and logs are ext3, as XCP-ng makes them: XCP-ng's tools (upgrade, restore, its backup
detection) look for ext3 ``root-*`` partitions, and ext3 mounts through the ext4 driver
everywhere. The ESP is FAT32 made without mounting it (``mkfs.vfat``; files go in with mtools),
so it works on kernels without a vfat driver.
"""

from __future__ import annotations

from collections.abc import Callable

from installer.block import mkfs
from installer.errors import FailedError
from installer.plan import PartitionSpec

_MAKERS: dict[str, Callable[[str, str], None]] = {
    "ext3": lambda device, label: mkfs.ext(device, label, kind="ext3"),
    "vfat": mkfs.vfat,
    "swap": mkfs.swap,
}


def make_filesystem(spec: PartitionSpec, device: str) -> None:
    """Make ``spec``'s filesystem on ``device``; a partition without one is left alone."""
    if spec.filesystem is None:
        return
    maker = _MAKERS.get(spec.filesystem)
    if maker is None or spec.label is None:
        raise FailedError(f"partition {spec.number} ({spec.role}) asks for filesystem "
                          f"{spec.filesystem!r} with label {spec.label!r}, which we cannot make")
    maker(device, spec.label)
