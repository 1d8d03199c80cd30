"""The HTTP workers' event loop: it serves past ``select()``'s descriptor limit, asks an idle
connection nothing at each turn, still closes connections idle too long, and misses no change a
request thread makes (checked with its once-a-second full scan turned off)."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pytest
from flask import Flask, request

from pxe.httpd.channel import WaitingChannel, adopt
from pxe.httpd.eventloop import FULL_SCAN_S, EventLoop
from pxe.httpd.server import make_server

NEVER_S = 3600.0  # a full scan interval no test outlasts


def _app() -> Flask:
    app = Flask(__name__)

    @app.get("/bytes")
    def some_bytes() -> bytes:
        return b"x" * int(request.args.get("n", "2"))

    return app


@contextmanager
def _serving(
    loop: EventLoop | None = None,
    channel_class: type[WaitingChannel] = WaitingChannel,
    **options: object,
) -> Iterator[int]:
    """A server as a worker runs one (``server.run()``, waitress's own loop settings), in a
    thread; its port. Fails the test if the loop stopped on an exception."""
    server = make_server(_app(), "127.0.0.1", 0, threads=4, **options)
    if loop is not None:
        adopt(server, loop)
    server.channel_class = channel_class
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="event-loop", daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()  # empties the map: the loop ends at its next turn
        thread.join(timeout=5)
    assert not failures, f"the event loop stopped: {failures[0]!r}"


def _get(port: int, path: str, timeout: float = 10.0) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        connection.close()


def _idle_connections(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    """``count`` connections the server has accepted, which never send a request."""
    opened = [stack.enter_context(socket.create_connection(("127.0.0.1", port)))
              for _ in range(count)]  # fmt: skip
    _get(port, "/bytes")  # the listener took them all before this one
    return opened


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Room for 1,100 connections on both ends, and this process's own descriptors numbered
    up to 1,050 already, so every connection the server accepts is numbered above 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    held: list[int] = []
    try:
        with open(os.devnull) as null:
            while not held or held[-1] < 1050:
                held.append(os.dup(null.fileno()))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_descriptors")
def test_a_worker_serves_connections_numbered_past_select_s_limit() -> None:
    """waitress's own loop (``select``) stopped at its first turn with "filedescriptor out of
    range in select()", dropping every connection the worker held."""
    with _serving() as port, ExitStack() as stack:
        _idle_connections(port, 40, stack)
        assert _get(port, "/bytes?n=5", timeout=5) == b"xxxxx"


class _CountingChannel(WaitingChannel):
    """Counts how often the loop asks it what it wants."""

    made: list[_CountingChannel] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.asked = 0
        super().__init__(*args, **kwargs)
        _CountingChannel.made.append(self)

    def readable(self) -> bool:
        self.asked += 1
        return super().readable()


def test_idle_connections_are_not_asked_at_every_turn() -> None:
    """waitress's loop asks every open connection at every turn, several per request: 300
    requests beside 200 idle connections made about 200,000 asks of them."""
    _CountingChannel.made = []
    with _serving(channel_class=_CountingChannel) as port, ExitStack() as stack:
        _idle_connections(port, 200, stack)
        idle = list(_CountingChannel.made)[:200]
        before = sum(channel.asked for channel in idle)
        started = time.monotonic()
        for _ in range(300):
            _get(port, "/bytes")
        elapsed = time.monotonic() - started
        asked = sum(channel.asked for channel in idle) - before
    # Each is asked at each full scan (one a second), and for nothing else.
    full_scans = elapsed / FULL_SCAN_S + 2
    assert asked <= 200 * full_scans, f"{asked} asks of 200 idle connections in {elapsed:.1f} s"


def test_a_connection_idle_past_the_timeout_is_closed() -> None:
    """waitress's maintenance marks it for closing from inside the listener; only the full
    scan tells the loop."""
    with _serving(channel_timeout=1, cleanup_interval=1) as port, ExitStack() as stack:
        (idle,) = _idle_connections(port, 1, stack)
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server
        assert time.monotonic() - started < 5


def _exchange(port: int, requests: int, seed: int) -> None:
    """``requests`` requests on one kept-alive connection, bodies from 2 bytes to 2 MiB (past
    what a request thread sends itself, so the loop sends the rest)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        for i in range(requests):
            n = (2, 20_000, 300_000, 2 << 20)[(seed + i) % 4]
            connection.request("GET", f"/bytes?n={n}")
            response = connection.getresponse()
            assert response.status == 200
            assert len(response.read()) == n
    finally:
        connection.close()


def _pipelined(port: int, count: int) -> None:
    """``count`` requests sent at once; each thread queues the next as it leaves."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /bytes?n=300000 HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        received = 0
        while received < count * 300_000:  # the bodies, with headers besides
            piece = sock.recv(1 << 20)
            assert piece, f"closed after {received} bytes"
            received += len(piece)


def test_no_change_a_request_thread_makes_is_missed() -> None:
    """With the full scan off, a change the loop was not told of would stall its connection
    until the clients' 20 s timeout."""
    with _serving(EventLoop(full_scan_s=NEVER_S)) as port, ThreadPoolExecutor(24) as pool:
        started = time.monotonic()
        futures = [pool.submit(_exchange, port, 20, seed) for seed in range(16)]
        futures += [pool.submit(_pipelined, port, 4) for _ in range(8)]
        for future in futures:
            future.result()
        assert time.monotonic() - started < 20
