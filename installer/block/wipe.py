"""Finding and erasing stale signatures (``wipefs``).

Old md superblocks, LVM labels, ZFS labels and filesystem magic left on a reused disk break
installs and first boots (an XCP-ng complaint), so every partition and disk we take over is
wiped, and the tests read the signatures back with the same tool.

wipefs alone is not enough for ZFS: it erases one magic string per signature libblkid reports,
and libblkid stops reporting a ZFS label once fewer than four uberblocks are left, so three
survive beside the label's untouched name-value list, which is what ``zpool import`` reads. The
first and last MiB of a device hold both pairs of ZFS labels (the back pair aligned down to
256 KiB), md superblocks of every version (0.90 and 1.0 near the end, 1.1 and 1.2 at the start)
and LVM's label, so those are zeroed too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from common.runner import run

# Partition-table signatures, kept when a preserved utility partition must survive.
TABLE_TYPES = ("gpt", "PMBR", "dos")
EDGE_BYTES = 1 << 20


@dataclass(frozen=True)
class Signature:
    device: str
    offset: int
    type: str


def signatures(device: str) -> tuple[Signature, ...]:
    """Every signature libblkid finds on ``device`` itself (not inside its partitions)."""
    out = run(["wipefs", "--json", device]).stdout
    if not out.strip():
        return ()
    return tuple(
        Signature(entry["device"], int(entry["offset"], 16), entry["type"])
        for entry in json.loads(out)["signatures"]
    )


def wipe(device: str, *, keep_tables: bool = False, edges: bool = True) -> None:
    """Erase every signature on ``device``, then zero its edges unless ``edges`` is false.

    ``keep_tables`` leaves GPT/MBR headers alone, and with them both edges, where they live.
    """
    cmd = ["wipefs", "--all", "--quiet"]
    if keep_tables:
        cmd += ["--types", ",".join(f"no{t}" for t in TABLE_TYPES)]
    run([*cmd, device])
    if edges and not keep_tables:
        zero_edges(device)


def zero_edges(device: str) -> None:
    """Zeros over the first and the last ``EDGE_BYTES`` of ``device`` (all of a smaller one).

    Opened exclusively, as wipefs opens it: a device something mounted or holds is refused.
    """
    fd = os.open(device, os.O_WRONLY | os.O_EXCL)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        head = min(EDGE_BYTES, size)
        os.pwrite(fd, bytes(head), 0)
        tail = max(size - EDGE_BYTES, head)
        if tail < size:
            os.pwrite(fd, bytes(size - tail), tail)
        os.fsync(fd)
    finally:
        os.close(fd)
