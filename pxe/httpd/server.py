"""The HTTP server under the Flask app: granian's Rust HTTP runtime, on a socket we bound.

Why granian: measured against waitress and gunicorn's threaded worker on this app
(``docs/performance.md``, ``make bench-wsgi``), it answered 1.45x waitress's cold answer files
with two thirds of its p99, because it parses HTTP and holds connections in Rust, outside the
interpreter lock, where waitress spent the cores.

Why its worker and not its command line: granian's command line binds its own port and runs its
own worker processes. ``serve`` does both itself (a port in use is one error before anything
starts, TFTP and ProxyDHCP stay in its process, workers die with it), so each of its workers,
and each test server in a thread, runs granian's WSGI worker on a socket already listening.
That worker is granian's internal interface: ``pyproject.toml`` pins the version, and every test
over real HTTP goes through here.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import granian
from granian._futures import _new_cbscheduler
from granian._granian import SocketHolder, WorkerSignal, WSGIWorker
from granian._loops import loops
from granian.http import HTTP1Settings
from werkzeug.wsgi import FileWrapper

from common import wire
from pxe.httpd.sockets import BACKLOG, listening_socket

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The granian whose internal worker interface this module calls (pyproject.toml pins it).
GRANIAN_VERSION = "2.8.9"
if granian.__version__ != GRANIAN_VERSION:
    raise ImportError(
        f"granian {granian.__version__} is installed but the HTTP server is written for "
        f"{GRANIAN_VERSION}: run `make setup` to install the pinned version"
    )

# Requests one worker takes on at once; the rest wait in the kernel's backlog. A rack opens a
# few hundred connections in a burst.
BACKPRESSURE = 1000
# A file response crosses into the Rust runtime one piece at a time.
PIECE_BYTES = 256 * 1024


class FilePieces(FileWrapper):
    """werkzeug's file wrapper (ranges, ``seek``, ``close``) reading 256 KiB a step, not 8 KiB:
    each step is a Python iteration and a hand-over to the runtime, and a rack takes its kernels
    and initrds through here."""

    def __init__(self, file: IO[bytes], buffer_size: int = PIECE_BYTES) -> None:
        super().__init__(file, max(buffer_size, PIECE_BYTES))


class _StartResponse:
    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 200
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]],
                 exc_info: object = None) -> None:  # fmt: skip
        self.status = int(status.split(" ", 1)[0])
        self.headers = headers


class _Body:
    """The app's iterable as granian iterates it, closed when the response is done (PEP 3333)."""

    __slots__ = ("__next__", "_inner")

    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner
        self.__next__ = iter(inner).__next__

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _runner(app: WsgiApp) -> Callable[[Any, dict[str, Any]], int]:
    """What granian calls per request. Ours rather than granian's, whose environ starts from a
    copy of ``os.environ``: a worker's environment carries ``serve``'s settings."""
    base: dict[str, Any] = {
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": "xcp-provision",
        "wsgi.errors": sys.stderr,
        "wsgi.file_wrapper": FilePieces,
        "wsgi.input_terminated": True,
        "wsgi.multiprocess": True,
        "wsgi.multithread": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def run(proto: Any, scope: dict[str, Any]) -> int:
        start = _StartResponse()
        body = app(base | scope, start)
        if isinstance(body, list):
            proto.response_bytes(start.status, start.headers, b"".join(body))
        else:
            proto.response_iter(start.status, start.headers, _Body(body))
        return start.status

    return run


class HttpServer:
    """``app`` served on ``sock`` by ``threads`` Python threads and granian's I/O thread; the
    socket is granian's from then on, and it closes it when it stops.

    :meth:`start` returns at once; :meth:`stop` stops accepting, lets the requests in flight
    finish and returns when they have."""

    def __init__(self, app: WsgiApp, sock: socket.socket, threads: int) -> None:
        self._stopping = WorkerSignal()
        self._stopped = threading.Event()
        self._stopping.add_cb(self._stopped.set)  # granian calls it once the last response went
        self._worker = WSGIWorker(
            1,  # worker id, in granian's logs
            (None, SocketHolder(sock.detach(), False, BACKLOG)),  # granian's to close
            None,  # no metrics pipe to a granian master
            1,  # runtime (I/O) threads
            512,  # runtime threads for blocking I/O
            threads,  # Python threads running the app
            30,  # seconds an idle Python thread is kept
            BACKPRESSURE,
            "1",  # HTTP/1.1: what firmware and installers speak
            HTTP1Settings(),
            None,  # no HTTP/2 settings
            None,  # no static files: the app sends its own
            False, None, None, None, "tls1.3", None, [], False,  # no TLS (nginx terminates it)
            (None, None),  # no metrics
        )  # fmt: skip
        self._app = app

    def start(self) -> None:
        loop = loops.get("asyncio")  # granian wants one; a WSGI app never runs on it
        scheduler = _new_cbscheduler(loop, _runner(self._app), impl_asyncio=True)
        self._worker.serve_mtr(scheduler, loop, self._stopping)

    def request_stop(self) -> None:
        """Stop accepting and finish what runs, without waiting (a signal handler may call it)."""
        self._stopping.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop; false if requests were still running after ``timeout`` seconds."""
        self.request_stop()
        return self._stopped.wait(timeout)

    def wait(self) -> None:
        """Until a stop was requested and the requests in flight have finished."""
        while not self._stopped.wait(0.5):  # a bounded wait lets signal handlers run
            pass


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{wire.authority(self.host, self.port)}"


@contextmanager
def running_server(
    app: WsgiApp, host: str = "127.0.0.1", port: int = 0, threads: int = 16
) -> Iterator[RunningServer]:
    """Serve ``app`` from this process until the block ends: tests over real HTTP, benches."""
    sock = listening_socket(host, port)
    port = sock.getsockname()[1]
    server = HttpServer(app, sock, threads)
    server.start()
    try:
        yield RunningServer(host, port)
    finally:
        server.stop(timeout=10)
