"""The two pieces a reused disk needs beyond wipefs, on real loop devices of this machine.

Zeroing the edges: wipefs stops erasing a ZFS label when libblkid stops reporting it, with
uberblocks left. Forgetting busy partitions: udevd opens a partition right after we write to
it, and the kernel refuses to drop an open partition. Both showed up when the installer ran in
its own image (tests/installer/test_installer_vm_disks.py); these pin them down in seconds.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from support.loopdisk import (
    GIB,
    MIB,
    loop_image,
    make_lvm_pv,
    sync,
    write_md_superblock,
    write_zfs_label,
)
from support.stale_probe import lvm_label, md12, zfs_uberblocks

from common.runner import run
from installer.block import loop, nodes, wipe
from installer.errors import FailedError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
]


def _read(device: str, offset: int, length: int) -> bytes:
    with open(device, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _mark(device: str, offset: int) -> None:
    with open(device, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"old data")


def test_wipe_leaves_no_zfs_uberblock_md_superblock_or_lvm_label(tmp_path: Path) -> None:
    size = 1 * GIB
    with loop_image(tmp_path / "disk.img", size) as device:
        make_lvm_pv(device)
        write_md_superblock(device)
        write_zfs_label(device, size)
        sync(device)
        assert lvm_label(device, 0) and md12(device, 0)
        assert zfs_uberblocks(device, 0, size) == 16
        wipe.wipe(device)
        sync(device)
        assert zfs_uberblocks(device, 0, size) == 0
        assert not lvm_label(device, 0) and not md12(device, 0)
        assert run(["wipefs", "--noheadings", device]).stdout == ""


def test_edges_stay_when_a_table_is_kept_or_edges_are_off(tmp_path: Path) -> None:
    size = 64 * MIB
    with loop_image(tmp_path / "disk.img", size) as device:
        run(["sgdisk", "-n1:2048:+8M", "-c1:DELLUTILITY", device])
        for offset in (512 * 1024, size - 512 * 1024):
            _mark(device, offset)
        wipe.wipe(device, keep_tables=True)
        sync(device)
        assert "No problems found" in run(["sgdisk", "--verify", device]).stdout
        wipe.wipe(device, edges=False)
        sync(device)
        assert run(["wipefs", "--noheadings", device]).stdout == ""
        for offset in (512 * 1024, size - 512 * 1024):
            assert _read(device, offset, 8) == b"old data"
        wipe.wipe(device)
        sync(device)
        for offset in (512 * 1024, size - 512 * 1024):
            assert _read(device, offset, 8) == bytes(8)


def test_forget_partitions_waits_for_a_short_probe(tmp_path: Path) -> None:
    with loop_image(tmp_path / "disk.img", 64 * MIB) as device:
        run(["sgdisk", "-n1:2048:+8M", "-n2:0:+8M", device])
        made = loop.refresh(device)
        fd = os.open(made[1], os.O_RDONLY)  # as udevd's probe holds it, for half a second
        closer = threading.Timer(0.5, os.close, (fd,))
        closer.start()
        try:
            nodes.forget_partitions(device)
        finally:
            closer.join()
        assert nodes.kernel_partitions(device) == {}


def test_forget_partitions_gives_up_on_a_partition_held_open(tmp_path: Path) -> None:
    with loop_image(tmp_path / "disk.img", 64 * MIB) as device:
        run(["sgdisk", "-n1:2048:+8M", device])
        made = loop.refresh(device)
        fd = os.open(made[1], os.O_RDONLY)
        try:
            with pytest.raises(FailedError, match="refused to forget partition"):
                nodes.forget_partitions(device, busy_timeout=0.5)
        finally:
            os.close(fd)
