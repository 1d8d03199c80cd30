"""Finding and erasing stale signatures (``wipefs``).

Old md superblocks, LVM labels, ZFS labels and filesystem magic left on a reused disk break
installs and first boots (an XCP-ng complaint), so every partition and disk we take over is
wiped, and the tests read the signatures back with the same tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.runner import run

# Partition-table signatures, kept when a preserved utility partition must survive.
TABLE_TYPES = ("gpt", "PMBR", "dos")


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


def wipe(device: str, *, keep_tables: bool = False) -> None:
    """Erase every signature on ``device``; ``keep_tables`` leaves GPT/MBR headers alone."""
    cmd = ["wipefs", "--all", "--quiet"]
    if keep_tables:
        cmd += ["--types", ",".join(f"no{t}" for t in TABLE_TYPES)]
    run([*cmd, device])
