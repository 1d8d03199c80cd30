"""Disk image files as block devices.

``--target-disk FILE`` and the tests install onto an image file: we attach it to a free loop
device, make its partition nodes ourselves (the kernel may not scan loop devices, see
``installer.block.nodes``), and always detach it, forgetting the partitions first because
partitions added by hand outlive the loop binding.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from common.runner import run
from installer.block import nodes, sfdisk


def attach(image: Path | str) -> str:
    """Bind ``image`` to a free loop device and return the device path."""
    return run(["losetup", "--find", "--show", os.fspath(image)]).stdout.strip()


def detach(device: str) -> None:
    nodes.forget_partitions(device)
    run(["losetup", "--detach", device])


def table_numbers(device: str) -> list[int]:
    """Partition numbers in the table on ``device`` (read from the disk, not the kernel)."""
    table = sfdisk.read(device)
    return sorted(entry.number for entry in table.entries) if table else []


def refresh(device: str) -> dict[int, str]:
    """Make nodes for the partitions now in ``device``'s table; number -> node path."""
    return nodes.add_partitions(device, table_numbers(device))


def backing_file(device: str) -> str | None:
    path = Path("/sys/class/block") / Path(os.path.realpath(device)).name / "loop/backing_file"
    try:
        return path.read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def attached(image: Path | str) -> Iterator[str]:
    """Attach ``image``, make nodes for the partitions it already has, always detach after."""
    device = attach(image)
    try:
        refresh(device)
        yield device
    finally:
        detach(device)
