"""While a request thread is inside a write (holding its connection's output lock), the server's
event loop waits for it instead of going round and round; waitress's own connection spins.

The request thread is held inside its write for a fixed time (as when it waits for the
interpreter there), and the loop thread's own CPU clock says what the loop did meanwhile."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import waitress
from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

from pxe.httpd.channel import adopt, listeners
from pxe.httpd.server import make_server, make_socket_server

HOLD_S = 0.6
BODY = b"x" * 100_000
LOOP = "event-loop"

Server = BaseWSGIServer | MultiSocketServer


def _flask() -> Flask:
    flask = Flask(__name__)

    @flask.route("/body")
    def body() -> bytes:
        return BODY

    return flask


def _tcp_server(flask: Flask) -> Server:
    return make_server(flask, "127.0.0.1", 0, threads=2)


def _worker_server(flask: Flask) -> Server:
    listening = socket.create_server(("127.0.0.1", 0), reuse_port=True)
    return make_socket_server(flask, listening, threads=2)


def _two_listeners(flask: Flask) -> Server:
    """What waitress builds for a host name with several addresses: one server per address."""
    server = waitress.create_server(flask, listen="127.0.0.1:0 127.0.0.1:0", threads=2)
    adopt(server)
    return server


def _held_in_writes(base: type[HTTPChannel]) -> type[HTTPChannel]:
    """``base`` whose request threads stay HOLD_S inside each write, output lock held."""

    class HeldInWrites(base):  # type: ignore[misc,valid-type]
        def _flush_some(self, do_close: bool = True) -> bool:
            if threading.current_thread().name != LOOP:
                time.sleep(HOLD_S)
            return super()._flush_some(do_close=do_close)

    return HeldInWrites


@contextmanager
def _serving(server: Server) -> Iterator[tuple[int, threading.Thread]]:
    stopping = threading.Event()
    listening = server.map if isinstance(server, MultiSocketServer) else server._map

    def loop() -> None:
        while not stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=listening, count=1)

    thread = threading.Thread(target=loop, name=LOOP, daemon=True)
    thread.start()
    try:
        yield listeners(server)[-1].effective_port, thread
    finally:
        stopping.set()
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        for dispatcher in list(listening.values()):
            dispatcher.close()


def _loop_cpu_during_one_response(server: Server) -> float:
    with _serving(server) as (port, thread):
        clock = time.pthread_getcpuclockid(thread.ident)
        before = time.clock_gettime(clock)
        fetched = subprocess.run(
            ["curl", "-sS", "--max-time", "30", f"http://127.0.0.1:{port}/body"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        spent = time.clock_gettime(clock) - before
    assert fetched.stdout == BODY
    return spent


@pytest.mark.parametrize("build", [_tcp_server, _worker_server, _two_listeners])
def test_the_loop_waits_for_a_request_thread_inside_a_write(build: Callable[..., Server]) -> None:
    server = build(_flask())
    for listener in listeners(server):
        listener.channel_class = _held_in_writes(listener.channel_class)
    spent = _loop_cpu_during_one_response(server)
    assert spent < 0.1 * HOLD_S, f"the loop used {spent:.3f} s of CPU while the write was held"


def test_waitress_own_connection_spins_meanwhile() -> None:
    """The control: with waitress's connection the loop goes round for as long as the write is
    held. Should waitress stop doing so, this fails, and the override can go."""
    server = _tcp_server(_flask())
    server.channel_class = _held_in_writes(HTTPChannel)
    spent = _loop_cpu_during_one_response(server)
    assert spent > 0.4 * HOLD_S, f"the loop used only {spent:.3f} s of CPU"
