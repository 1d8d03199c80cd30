"""Mounting the target's filesystems for the install, and always unmounting them.

Mounts stack (root, then logs on ``var/log`` inside it) and come off in reverse order even when
the install fails, so a failed run never leaves a busy loop device or a stale mount behind.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common import runner
from common.errors import CommandError

log = logging.getLogger(__name__)


class Mounts:
    """A stack of mounts under one temporary directory."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._stack: list[Path] = []

    def mount(self, device: str, rel: str = "", *, options: str | None = None) -> Path:
        target = self.top / rel
        target.mkdir(parents=True, exist_ok=True)
        extra = ["-o", options] if options else []
        runner.run(["mount", *extra, device, target])
        self._stack.append(target)
        return target

    def unmount_all(self) -> None:
        runner.run(["sync"], check=False)
        while self._stack:
            target = self._stack.pop()
            try:
                runner.run(["umount", target])
            except CommandError as exc:
                log.warning("umount %s failed (%s); detaching lazily", target, exc)
                runner.run(["umount", "--lazy", target], check=False)


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
