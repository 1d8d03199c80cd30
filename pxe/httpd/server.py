"""The WSGI server (waitress), for ``serve`` and for anything that needs the real thing in a
thread: tests over real HTTP, benchmarks, the lab."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer

from common import wire
from pxe.httpd.channel import adopt
from pxe.httpd.file_sender import read_once_files

# How long a thread of a server process may keep the interpreter while another waits for it.
# Python's 5 ms suits threads that compute; a server's threads mostly wait on sockets and the
# database, and each one coming back must wait for the interpreter. A registration's write
# waits so at each of its statements while holding SQLite's write lock, which every process
# then waits for: at 5 ms, 1,000 registrations at once went through at 475 a second, at
# 0.5 ms about twice as fast, with answer files and /healthz unchanged (bench/).
SWITCH_INTERVAL_S = 0.0005


def hand_over_interpreter_quickly() -> None:
    """Set this process's :data:`SWITCH_INTERVAL_S`: ``serve`` and each HTTP worker call it."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def make_server(
    app: Flask, host: str, port: int, threads: int = 16, **options: object
) -> BaseWSGIServer | MultiSocketServer:
    """A bound waitress server (port 0 picks a free one); ``.run()`` serves, ``.close()`` stops.

    ``options`` go to waitress (``connection_limit``, ``backlog``... for load tests)."""
    return _created(app, threads, options, host=host, port=port)


def make_socket_server(
    app: Flask, sock: socket.socket, threads: int = 16, **options: object
) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server on a socket already listening (a worker's, bound by ``serve``)."""
    return _created(app, threads, options, sockets=[sock])


def _created(
    app: Flask, threads: int, options: dict[str, object], **where: object
) -> BaseWSGIServer | MultiSocketServer:
    server = waitress.create_server(read_once_files(app), threads=threads, **where,
                                    **_options(options))  # fmt: skip
    adopt(server)
    return server


class QueueWarnings(logging.Filter):
    """waitress warns "Task queue depth is N" for every request queued behind busy threads, so
    a rack booting wrote hundreds of identical lines to the journal. One line per ``interval``
    at most: a warning goes through when none has for that long, as it is when it is the only
    one since the last line, else saying how deep the queue got and how many warnings the line
    stands for (those held back since the last line included)."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:  # fmt: skip
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last = float("-inf")  # when a line last went through
        self._deepest = 0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        depth = record.args[0] if isinstance(record.args, tuple) and record.args else 0
        now = self._clock()
        with self._lock:
            self._deepest = max(self._deepest, depth if isinstance(depth, int) else 0)
            self._held += 1
            if now < self._last + self._interval:
                return False
            if self._held > 1:
                record.msg = ("waitress's task queue reached %d requests waiting for a thread "
                              "(%d warnings in %.0f s)")  # fmt: skip
                record.args = (self._deepest, self._held, now - self._last)
            self._last = now
            self._deepest = self._held = 0
        return True


def _summarise_queue_warnings() -> None:
    """Put :class:`QueueWarnings` on waitress's queue logger, once per process."""
    queue = logging.getLogger("waitress.queue")
    if not any(isinstance(f, QueueWarnings) for f in queue.filters):
        queue.addFilter(QueueWarnings())


def _options(options: dict[str, object]) -> dict[str, object]:
    _summarise_queue_warnings()
    # A rack opens more connections at once than waitress's default limit of 100; above the
    # limit it stops accepting and logs each toggle, which costs the busy main thread more.
    return {"ident": "xcp-provision", "channel_timeout": 120, "connection_limit": 1000,
            **options}  # fmt: skip


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{wire.authority(self.host, self.port)}"


@contextmanager
def running_server(
    app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 16, **options: object
) -> Iterator[RunningServer]:
    """Serve ``app`` from a background thread until the block ends.

    The loop runs in short slices so it stops between them, never with the sockets closed under
    a turn in the server thread.
    """
    server = make_server(app, host, port, threads, **options)
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=loop, name="waitress", daemon=True)
    thread.start()
    try:
        yield RunningServer(host, server.effective_port)
    finally:
        stopping.set()
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)
