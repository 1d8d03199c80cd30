"""TFTP totals kept in a small shared file, so HTTP workers in other processes can publish them.

``serve`` runs TFTP in its own process and HTTP in worker processes; ``/metrics`` is answered by
whichever worker a scrape reaches. The TFTP thread writes its counters straight into a mapped
file (one writer, whole 8-byte words) and every worker maps the same file read-only, so a scrape
shows the live totals with no message passing and no staleness.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

# The attributes TftpService counts, in their order in the file.
FIELDS = ("transfers", "bytes", "failed", "refused", "malformed", "crashed")
_WORD = struct.Struct("=q")
_SIZE = _WORD.size * len(FIELDS)


class SharedTftpCounters:
    """Drop-in for :class:`pxe.tftp.server.TftpCounters` whose values live in ``path``."""

    def __init__(self, path: Path, *, writable: bool) -> None:
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        fd = os.open(path, flags, 0o600)
        try:
            if writable:
                os.ftruncate(fd, _SIZE)
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            object.__setattr__(self, "_map", mmap.mmap(fd, _SIZE, access=access))
        finally:
            os.close(fd)

    def __getattr__(self, name: str) -> int:
        try:
            index = FIELDS.index(name)
        except ValueError:
            raise AttributeError(name) from None
        return _WORD.unpack_from(self._map, index * _WORD.size)[0]

    def __setattr__(self, name: str, value: int) -> None:
        if name not in FIELDS:
            raise AttributeError(f"TFTP counters have no {name!r}")
        _WORD.pack_into(self._map, FIELDS.index(name) * _WORD.size, value)

    def close(self) -> None:
        self._map.close()
