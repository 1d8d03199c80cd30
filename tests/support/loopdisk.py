"""Sparse disk images on loop devices, and the stale signatures reused disks carry.

Every image is a sparse file of the test's own (tens of GiB cost nothing), attached with
``installer.block.loop.attached`` so partition nodes are made explicitly and are forgotten, with
the loop device, in all cases. Hashing follows the file's data extents (SEEK_DATA/SEEK_HOLE),
so "byte-identical" is checked in milliseconds on a 60 GiB image: a refusal must not write even
a zero.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from common.runner import run
from installer.block import loop

GIB = 1 << 30
MIB = 1 << 20


def sparse_image(path: Path, size_bytes: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size_bytes)
    return path


@contextlib.contextmanager
def loop_image(path: Path, size_bytes: int | None = None) -> Iterator[str]:
    """Create (when ``size_bytes`` is given) and attach ``path``; detach and delete after."""
    if size_bytes is not None:
        sparse_image(path, size_bytes)
    try:
        with loop.attached(path) as device:
            yield device
    finally:
        path.unlink(missing_ok=True)


def content_hash(path: Path) -> str:
    """SHA-256 over (offset, bytes) of every data extent; holes read as nothing written."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fd = fh.fileno()
        end = os.fstat(fd).st_size
        digest.update(struct.pack("<Q", end))
        offset = 0
        while offset < end:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            digest.update(struct.pack("<QQ", start, stop))
            fh.seek(start)
            remaining = stop - start
            while remaining:
                chunk = fh.read(min(remaining, 8 * MIB))
                digest.update(chunk)
                remaining -= len(chunk)
            offset = stop
    return digest.hexdigest()


def sync(device: str) -> None:
    """Flush a loop device's buffers into its image before the file is read directly."""
    run(["blockdev", "--flushbufs", device])


def write_md_superblock(target: str, offset: int = 0) -> None:
    """An md RAID1 member superblock (metadata 1.2, 4 KiB in), with the checksum libblkid checks.

    No md driver here, so mdadm cannot create one; the fields are those of mdp_superblock_1.
    """
    sb = bytearray(256 + 2 * 4)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)
    sb[16:32] = os.urandom(16)
    sb[32:44] = b"oldhost:md0\0"
    struct.pack_into("<i", sb, 72, 1)  # level: raid1
    struct.pack_into("<I", sb, 92, 2)  # raid_disks
    struct.pack_into("<Q", sb, 128, 2048)  # data_offset
    struct.pack_into("<Q", sb, 144, 8)  # super_offset (sectors): where we write it
    struct.pack_into("<I", sb, 220, 4)  # max_dev
    total = sum(struct.unpack_from("<I", sb, i)[0] for i in range(0, len(sb), 4))
    struct.pack_into("<I", sb, 216, ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF)
    _write(target, offset + 4096, bytes(sb))


def write_zfs_label(target: str, size_bytes: int, offset: int = 0) -> None:
    """Uberblocks in all four ZFS vdev labels (two at the start, two at the end), which is what
    libblkid's zfs_member probe counts (it wants at least four)."""
    label = 256 * 1024
    align = size_bytes % label
    starts = (0, label, size_bytes - 2 * label - align, size_bytes - label - align)
    for start in starts:
        for slot in range(4):
            uberblock = struct.pack("<QQQ", 0x00BAB10C, 5000, 100 + slot)
            _write(target, offset + start + 128 * 1024 + slot * 1024, uberblock)


def make_lvm_pv(device: str) -> None:
    """A real LVM physical-volume label (pvcreate needs no device-mapper for that)."""
    run(["pvcreate", "--force", "--force", "--yes", device],
        env={"LVM_SUPPRESS_FD_WARNINGS": "1"})


def _write(target: str, offset: int, data: bytes) -> None:
    with open(target, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def signature_types(device: str) -> set[str]:
    """What ``wipefs`` finds on ``device`` itself."""
    out = run(["wipefs", "--noheadings", "--output", "TYPE", device]).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}
