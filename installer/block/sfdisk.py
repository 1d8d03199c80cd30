"""Reading a partition table straight from the disk (``sfdisk --json``).

Used where the kernel may not know the partitions (no nodes yet): the table is the truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.runner import run


@dataclass(frozen=True)
class TableEntry:
    number: int
    start: int
    size: int
    type: str
    name: str
    uuid: str


@dataclass(frozen=True)
class Table:
    label: str
    sector_size: int
    entries: tuple[TableEntry, ...]


def read(device: str) -> Table | None:
    """The table on ``device``, or None when it carries none sfdisk recognises."""
    result = run(["sfdisk", "--json", device], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    table = json.loads(result.stdout)["partitiontable"]
    entries = tuple(
        TableEntry(
            number=_number(p["node"]),
            start=int(p["start"]),
            size=int(p["size"]),
            type=str(p.get("type", "")),
            name=str(p.get("name", "")),
            uuid=str(p.get("uuid", "")),
        )
        for p in table.get("partitions", [])
    )
    return Table(table["label"], int(table.get("sectorsize", 512)), entries)


def _number(node: str) -> int:
    digits = len(node) - len(node.rstrip("0123456789"))
    return int(node[-digits:])
