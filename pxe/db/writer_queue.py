"""SQLite writers queued on locks instead of in SQLite's busy handler.

SQLite lets one writer in at a time and makes the others poll, sleeping up to 100 ms between
tries: with a rack registering at once, the lock sat free while every waiter slept. Queueing
here hands the lock over at once (measured in bench/register_bench.py): a thread lock among
this process's writers, then an flock on ``<database>.writers`` among the processes sharing the
file (``serve``'s HTTP workers, its TFTP, the CLI); the kernel wakes the next waiter the moment
the holder lets go. PostgreSQL needs none of this.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriterQueue:
    """The queue of one SQLite file's writers (``path`` None: an in-memory database, whose
    writers are all in this process). The lock file stays open between turns and is closed by
    :meth:`close`, when its database is disposed; the next turn opens it again."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """This writer's turn, once every writer before it has had its own."""
        with self._lock:
            if self._path is None:
                yield
                return
            if self._fd is None:
                self._fd = os.open(f"{self._path}.writers",
                                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # fmt: skip
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits without holding the interpreter
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
