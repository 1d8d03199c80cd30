"""A real TCP proxy on loopback that breaks chosen connections, for fault tests.

Each client connection gets its own upstream connection and two pump threads. A connection
whose request head (the bytes up to the blank line) contains a :class:`Cut`'s ``match`` is one
of its targets; the first ``count`` targets of each cut (in the order given) get at most
``cut_after`` bytes of the upstream's answer, then both sides are closed. ``cut_after=0``
lets the request through whole and drops the answer the moment the upstream starts sending it:
the server did the work, the client never hears of it (what a server killed between its commit
and its answer, or a lost reply, looks like).
``cut_after=None`` closes the connection as soon as its request head arrived: the server never
hears of it (a server down, a request lost on the way).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType

_HEAD_LIMIT = 64 * 1024
_CHUNK = 64 * 1024


@dataclass
class Cut:
    """Which connections to break and where."""

    match: bytes
    count: int
    cut_after: int | None


@dataclass
class _Counters:
    connections: int = 0
    targets: int = 0
    cuts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultyProxy:
    """``with FaultyProxy(("127.0.0.1", port), Cut(b"rootfs", 2, 1 << 20)) as proxy:`` then
    talk to ``proxy.port``; ``proxy.cuts`` says how many connections it broke."""

    def __init__(self, upstream: tuple[str, int], *cuts: Cut) -> None:
        self.upstream = upstream
        self.cuts_wanted = list(cuts)
        self._counters = _Counters()
        self._per_cut = [0] * len(cuts)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cuts(self) -> int:
        return self._counters.cuts

    @property
    def connections(self) -> int:
        return self._counters.connections

    def __enter__(self) -> FaultyProxy:
        self._spawn(self._accept)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._listener.close()
        with self._counters.lock:
            for sock in list(self._open):
                _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._connection, client)

    def _track(self, sock: socket.socket) -> None:
        with self._counters.lock:
            self._open.add(sock)

    def _cut_for(self, head: bytes) -> Cut | None:
        """The cut this connection gets, if any."""
        with self._counters.lock:
            self._counters.connections += 1
            matching = [i for i, cut in enumerate(self.cuts_wanted) if cut.match in head]
            if matching:
                self._counters.targets += 1
            for index in matching:  # cuts in the order given, each for its count
                if self._per_cut[index] < self.cuts_wanted[index].count:
                    self._per_cut[index] += 1
                    return self.cuts_wanted[index]
        return None

    def _connection(self, client: socket.socket) -> None:
        self._track(client)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
                chunk = client.recv(_CHUNK)
                if not chunk:
                    break
                head += chunk
        except OSError:
            _close(client)
            return
        cut = self._cut_for(head)
        if cut is not None and cut.cut_after is None:
            with self._counters.lock:
                self._counters.cuts += 1
            _close(client)
            return
        limit = cut.cut_after if cut is not None else None
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            _close(client)
            return
        self._track(upstream)
        try:
            upstream.sendall(head)
        except OSError:
            _close(client, upstream)
            return
        self._spawn(_pump, client, upstream, None)
        if _pump(upstream, client, limit):
            with self._counters.lock:
                self._counters.cuts += 1
        _close(client, upstream)


def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> bool:
    """Copy until EOF; True when it stopped at ``limit`` bytes (then both are closed)."""
    passed = 0
    try:
        while True:
            chunk = source.recv(_CHUNK)
            if not chunk:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return False
            if limit is not None and passed + len(chunk) >= limit:
                if limit > passed:
                    sink.sendall(chunk[: limit - passed])
                _close(source, sink)
                return True
            sink.sendall(chunk)
            passed += len(chunk)
    except OSError:
        _close(source, sink)
        return False


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
