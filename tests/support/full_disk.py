"""A consumer of downloaded bytes that fails as a full disk does, counting its calls."""

from __future__ import annotations

import errno


class FullDisk:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, _data: bytes) -> None:
        self.calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")
