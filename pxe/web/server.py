"""The WSGI server (waitress), for ``serve`` and for anything that needs the real thing in a
thread: tests over real HTTP, benchmarks, the lab."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import waitress
from flask import Flask
from waitress.server import BaseWSGIServer, MultiSocketServer


def make_server(
    app: Flask, host: str, port: int, threads: int = 16
) -> BaseWSGIServer | MultiSocketServer:
    """A bound waitress server (port 0 picks a free one); ``.run()`` serves, ``.close()`` stops."""
    return waitress.create_server(
        app, host=host, port=port, threads=threads, ident="xcp-provision", channel_timeout=120
    )


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def running_server(
    app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 16
) -> Iterator[RunningServer]:
    """Serve ``app`` from a background thread until the block ends."""
    server = make_server(app, host, port, threads)
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:
            # close() from this thread's owner can pull the sockets out from under select().
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()
    try:
        yield RunningServer(host, server.effective_port)
    finally:
        stopping.set()
        server.close()
        thread.join(timeout=10)
