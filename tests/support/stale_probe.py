"""What stale RAID, LVM and ZFS metadata a disk still carries, seen two ways; run inside the
installer VM by its python3 (the image carries our ``common``).

libblkid (``wipefs``, ``blkid --probe``) is what udev, the installer and most tools believe; but
it stops reporting a ZFS label once fewer than four uberblocks are left, while ZFS reads each
label itself. So the places where each format keeps its magic are also read raw.

Usage: ``python3 stale_probe.py TAG JSON`` where JSON maps a disk to the extents its old
metadata was written at: ``{"/dev/vda": {"md12": [[start, size]], "lvm": [...], "zfs": [...],
"md090": true}}``. Prints one line, ``@@probe TAG {findings}``. The functions work on image
files too, so the test reads the same facts from the disk files afterwards.
"""

from __future__ import annotations

import json
import os
import struct
import sys

from common.errors import CommandError
from common.runner import run

MD_MAGIC = 0xA92B4EFC
MD_RESERVED = 64 * 1024
ZFS_MAGIC = 0x00BAB10C
ZFS_LABEL = 256 * 1024
ZFS_UBERBLOCKS = 128 * 1024
AMBIVALENT = 8


def _size(device: str) -> int:
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _read(device: str, offset: int, length: int) -> bytes:
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def wipefs_types(device: str) -> list[str]:
    out = run(["wipefs", "--json", device]).stdout
    return sorted(s["type"] for s in json.loads(out)["signatures"]) if out.strip() else []


def blkid_type(device: str, start: int, size: int) -> str:
    """What libblkid sees in [start, start + size) of ``device`` alone; blkid exits 2 when it
    finds nothing and 8 when several formats claim the range."""
    done = run(
        ["blkid", "--probe", "--output", "export", "--offset", str(start), "--size", str(size),
         device],
        check=False,
    )  # fmt: skip
    if done.returncode == AMBIVALENT:
        return "ambivalent"
    if done.returncode not in (0, 2):
        raise CommandError(done.cmd, done.returncode, done.stderr, done.stdout)
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return fields.get("TYPE", fields.get("PTTYPE", ""))


def md090_at_end(device: str, start: int, size: int) -> bool:
    offset = start + (size & ~(MD_RESERVED - 1)) - MD_RESERVED
    return struct.unpack("<I", _read(device, offset, 4))[0] == MD_MAGIC


def md12(device: str, start: int) -> bool:
    return struct.unpack("<I", _read(device, start + 4096, 4))[0] == MD_MAGIC


def lvm_label(device: str, start: int) -> bool:
    """LVM's label in one of the first four sectors: its id, then its type 24 bytes in (wipefs
    erases the type, which also breaks the checksum LVM verifies)."""
    head = _read(device, start, 4 * 512)
    return any(
        head[i * 512 : i * 512 + 8] == b"LABELONE"
        and head[i * 512 + 24 : i * 512 + 32] == b"LVM2 001"
        for i in range(4)
    )


def zfs_uberblocks(device: str, start: int, size: int) -> int:
    """Uberblocks left in the four vdev labels, in either byte order."""
    tail = size % ZFS_LABEL
    found = 0
    for label in (0, ZFS_LABEL, size - 2 * ZFS_LABEL - tail, size - ZFS_LABEL - tail):
        ring = _read(device, start + label + ZFS_UBERBLOCKS, ZFS_LABEL - ZFS_UBERBLOCKS)
        for slot in range(0, len(ring), 1024):
            magic = ring[slot : slot + 8]
            if magic in (struct.pack("<Q", ZFS_MAGIC), struct.pack(">Q", ZFS_MAGIC)):
                found += 1
    return found


def partitions(device: str) -> dict[str, list[str]]:
    """What wipefs finds in each partition the kernel knows on ``device``."""
    name = os.path.basename(device)
    sysfs = f"/sys/block/{name}"
    if not os.path.isdir(sysfs):  # an image file, read from the host
        return {}
    found = sorted(p for p in os.listdir(sysfs) if p.startswith(name))
    return {part: wipefs_types(f"/dev/{part}") for part in found}


def probe(device: str, old: dict) -> dict:
    size = _size(device)
    found: dict[str, object] = {
        "wipefs": wipefs_types(device),
        "partitions": partitions(device),
        "size": size,
    }
    if old.get("md090"):
        found["md090"] = md090_at_end(device, 0, size)
    for start, length in old.get("md12", []):
        found[f"md12@{start}"] = md12(device, start)
        found[f"blkid@{start}"] = blkid_type(device, start, length)
    for start, length in old.get("lvm", []):
        found[f"lvm@{start}"] = lvm_label(device, start)
        found[f"blkid@{start}"] = blkid_type(device, start, length)
    for start, length in old.get("zfs", []):
        found[f"zfs@{start}"] = zfs_uberblocks(device, start, length)
        found[f"blkid@{start}"] = blkid_type(device, start, length)
    return found


def main() -> None:
    tag, extents = sys.argv[1], json.loads(sys.argv[2])
    result = {device: probe(device, old) for device, old in extents.items()}
    print(f"@@probe {tag} {json.dumps(result, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    main()
