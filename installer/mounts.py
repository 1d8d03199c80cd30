"""Mounting the target's filesystems for the install, and always unmounting them.

Mounts stack (root, then logs on ``var/log`` inside it) and come off in reverse order even when
the install fails, so a failed run never leaves a busy loop device or a stale mount behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common import runner
from common.errors import CommandError

log = logging.getLogger(__name__)


# For a filesystem the install fills from empty: ext3's journal asks the disk to empty its
# write cache at every commit, which a bulk write of thousands of files pays for nothing (a cut
# install starts again from the partitions). Unmounting flushes each disk's cache once instead.
BULK_WRITE = "barrier=0"


class Mounts:
    """A stack of mounts under one temporary directory."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._stack: list[tuple[Path, str]] = []

    def mount(self, device: str, rel: str = "", *, options: str | None = None) -> Path:
        target = self.top / rel
        target.mkdir(parents=True, exist_ok=True)
        extra = ["-o", options] if options else []
        runner.run(["mount", *extra, device, target])
        self._stack.append((target, device))
        return target

    def unmount_all(self) -> None:
        runner.run(["sync"], check=False)
        while self._stack:
            target, device = self._stack.pop()
            try:
                runner.run(["umount", target])
            except CommandError as exc:
                log.warning("umount %s failed (%s); detaching lazily", target, exc)
                runner.run(["umount", "--lazy", target], check=False)
            else:
                flush_write_cache(device)


def flush_write_cache(device: str) -> None:
    """Have ``device`` (and, through md, its members) write its volatile cache to the medium:
    fsync on a block device sends the cache flush a filesystem mounted with ``BULK_WRITE``
    never sent. A failure is logged, not raised: the data was written, only its durability
    across a power cut in the next seconds is in doubt."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        log.warning("cannot open %s to flush its write cache: %s", device, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("flushing the write cache of %s failed: %s", device, exc)
    finally:
        os.close(fd)


@contextlib.contextmanager
def mounted_tree(prefix: str = "xcp-target-") -> Iterator[Mounts]:
    """A fresh mount point whose mounts are all undone on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as top:
        mounts = Mounts(Path(top))
        try:
            yield mounts
        finally:
            mounts.unmount_all()


@contextlib.contextmanager
def mounted(device: str, *, options: str | None = None) -> Iterator[Path]:
    """One filesystem mounted on a temporary directory for the duration of the block."""
    with mounted_tree("xcp-mount-") as mounts:
        yield mounts.mount(device, options=options)
