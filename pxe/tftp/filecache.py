"""The bytes of the small files TFTP serves over and over, kept in memory while they are unchanged.

A rack booting at once asks for the same loader (``undionly.kpxe``, ``ipxe.efi``, about 1 MiB)
dozens of times: reading it from the page cache a block at a time costs a system call every few
packets, and an open file per transfer. A cached file is served from memory instead. Each request
still opens the file and checks its identity (device, inode, size, modification and change
times), so a file replaced or rewritten on disk is read afresh on the next request.

File times advance by the kernel's clock tick, not by the nanosecond: a rewrite of the same size
right after a read could leave the identity unchanged. So, as git does for its index, a file
changed less than ``settle`` seconds ago is served but not kept.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time
from collections import OrderedDict
from typing import BinaryIO


@dataclasses.dataclass(frozen=True)
class _Identity:
    device: int
    inode: int
    size: int
    modified_ns: int
    changed_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> _Identity:
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                   status.st_ctime_ns)


class OutsideRootError(PermissionError):
    """The file opened is not under the root it had to be under."""


def _opened_path(file: BinaryIO) -> str:
    """Where the open file is now, as the kernel knows it (no path of ours to race with)."""
    return os.readlink(f"/proc/self/fd/{file.fileno()}")


class FileCache:
    """Whole files up to ``max_file`` bytes, at most ``max_total`` bytes in all, least recently
    served evicted first. Safe to call from several threads."""

    def __init__(self, max_file: int = 16 << 20, max_total: int = 64 << 20, *,
                 settle: float = 1.0) -> None:
        self.max_file = max_file
        self.max_total = max_total
        self.settle_ns = int(settle * 1e9)
        self._files: OrderedDict[str, tuple[_Identity, bytes]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def open(self, path: str, root: str) -> BinaryIO:
        """``path`` for reading: from memory if cached and unchanged, else from disk.

        Raises ``OSError`` as ``open`` does, ``OutsideRootError`` when the file opened is not
        under ``root`` (a real path): a directory of ``path`` swapped for a symlink after the
        caller resolved it opens something else than the caller checked. A file larger than
        ``max_file`` is returned as the open file itself, to stream from disk.
        """
        file = open(path, "rb")  # noqa: SIM115 (returned, or closed below)
        try:
            if os.path.commonpath([_opened_path(file), root]) != root:
                raise OutsideRootError(f"{path} opened outside {root}")
            identity = _Identity.of(os.fstat(file.fileno()))
            if identity.size > self.max_file:
                return file
            with self._lock:
                cached = self._files.get(path)
                if cached is not None and cached[0] == identity:
                    self._files.move_to_end(path)
                    self.hits += 1
                    file.close()
                    return io.BytesIO(cached[1])
                self._forget(path)
                self.misses += 1
            data = file.read()
        except BaseException:
            file.close()
            raise
        file.close()
        settled = time.time_ns() - max(identity.modified_ns, identity.changed_ns) > self.settle_ns
        if settled and len(data) == identity.size:
            self._keep(path, identity, data)
        return io.BytesIO(data)

    def _keep(self, path: str, identity: _Identity, data: bytes) -> None:
        with self._lock:
            self._forget(path)
            self._files[path] = (identity, data)
            self._total += len(data)
            while self._total > self.max_total:
                _, (_, evicted) = self._files.popitem(last=False)
                self._total -= len(evicted)

    def _forget(self, path: str) -> None:
        old = self._files.pop(path, None)
        if old is not None:
            self._total -= len(old[1])
