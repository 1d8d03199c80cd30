"""Files through waitress with each piece read once: byte-exact to slow and concurrent clients,
for ranges, and a reader that behaves like the file it reads; and hosts downloading slowly hold
none of the request threads."""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask, send_file

from pxe.httpd.file_sender import PIECE_BYTES, _ReadOnce
from pxe.httpd.server import running_server

# More than a loopback send buffer (4 MiB), so sends to a slow client stop partway through
# pieces; and a tail shorter than a piece.
SIZE = 24 * PIECE_BYTES + 12345


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "initrd.img"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def base(payload: tuple[Path, bytes], tmp_path: Path):
    big = tmp_path / "dom0.tar.zst"
    with big.open("wb") as file:  # sparse: the bytes do not matter, only that they take long
        file.truncate(64 << 20)
    app = Flask(__name__)
    app.add_url_rule("/file", "file", lambda: send_file(payload[0], conditional=True))
    app.add_url_rule("/big", "big", lambda: send_file(big))
    app.add_url_rule("/healthz", "healthz", lambda: "ok")
    with running_server(app, threads=4) as server:
        yield server


def test_slow_downloads_do_not_hold_the_request_threads(base) -> None:
    """Hosts on a slow link take minutes over a dom0 image; meanwhile every other request
    (answer files, build-done, registrations) must still be answered. waitress sends file
    bodies from its event loop. granian, measured 1.41x faster on answer files, keeps a thread
    per body still being sent beyond about 4 MiB: with it, this test times out."""
    stalled = []
    try:
        for _ in range(8):  # twice the server's threads, each reading nothing
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((base.host, int(base.port)))
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: rack\r\n\r\n")
            stalled.append(sock)
        time.sleep(1.0)  # every download has started and filled its socket
        started = time.monotonic()
        with urllib.request.urlopen(f"{base.url}/healthz", timeout=10) as response:
            assert response.read() == b"ok"
        assert time.monotonic() - started < 2.0
    finally:
        for sock in stalled:
            sock.close()


def _get(server, headers: dict[str, str] | None = None, *, slow: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    if slow:  # a small receive window: waitress's sends are cut short again and again
        conn.sock = socket.socket()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        conn.sock.settimeout(60)
        conn.sock.connect((server.host, int(server.port)))
    try:
        conn.request("GET", "/file", headers=headers or {})
        response = conn.getresponse()
        chunks = []
        while chunk := response.read(7000 if slow else 1 << 20):
            chunks.append(chunk)
        return response.status, b"".join(chunks)
    finally:
        conn.close()


def test_a_slow_client_gets_every_byte(base, payload: tuple[Path, bytes]) -> None:
    assert _get(base, slow=True) == (200, payload[1])


def test_concurrent_clients_get_every_byte(base, payload: tuple[Path, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _get(base), range(8)))
    assert results == [(200, payload[1])] * 8


@pytest.mark.parametrize("first,last", [(0, 0), (PIECE_BYTES - 3, PIECE_BYTES + 2),
                                        (SIZE - 10, SIZE - 1), (12345, SIZE - 1)])  # fmt: skip
def test_ranges_are_exact(base, payload: tuple[Path, bytes], first: int, last: int) -> None:
    status, body = _get(base, {"Range": f"bytes={first}-{last}"})
    assert (status, body) == (206, payload[1][first : last + 1])


def test_the_reader_moves_like_the_file(payload: tuple[Path, bytes]) -> None:
    path, data = payload
    with open(path, "rb") as plain, open(path, "rb") as raw:
        once = _ReadOnce(raw)
        steps = [("read", 10), ("seek", (5, os.SEEK_SET)), ("read", PIECE_BYTES),
                 ("seek", (-100, os.SEEK_CUR)), ("read", 300), ("seek", (-7, os.SEEK_END)),
                 ("read", 100), ("read", 10), ("seek", (0, os.SEEK_SET)), ("read", -1)]  # fmt: skip
        for op, arg in steps:
            if op == "seek":
                assert once.seek(*arg) == plain.seek(*arg)
            else:
                expected = plain.read(arg)
                got = b""
                while len(got) < len(expected):  # a read may stop at the end of a piece
                    piece = bytes(once.read(arg if arg < 0 else arg - len(got)))
                    assert piece, f"read({arg}) gave nothing at {once.tell()}"
                    got += piece
                assert got == expected
            assert once.tell() == plain.tell()
        assert bytes(once.read(10)) == b""
        once.close()
    assert len(data) == SIZE
