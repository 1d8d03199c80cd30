"""Low-level probing of one device (``blkid --probe``): no cache, no udev needed."""

from __future__ import annotations

from common.runner import run

AMBIVALENT = 8


def probe(device: str) -> dict[str, str]:
    """``TYPE``, ``LABEL``, ``UUID``, ``PART_ENTRY_*``... of ``device``; empty when nothing found.

    blkid exits 2 when it finds nothing, which is an answer, not a failure; it exits 8 when
    several filesystems claim the device (stale signatures), reported as ``AMBIVALENT``.
    """
    result = run(["blkid", "--probe", "--output", "export", device], check=False)
    if result.returncode == AMBIVALENT:
        return {"AMBIVALENT": "1"}
    if result.returncode not in (0, 2):
        result = run(["blkid", "--probe", "--output", "export", device])
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values
