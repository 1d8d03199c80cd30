"""Files through the HTTP server in 256 KiB pieces: byte-exact to slow and concurrent clients and
for ranges, and read in whole pieces whatever werkzeug asks for."""

from __future__ import annotations

import http.client
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask, send_file

from pxe.httpd.server import PIECE_BYTES, FilePieces, running_server

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
def base(payload: tuple[Path, bytes]):
    app = Flask(__name__)
    app.add_url_rule("/file", view_func=lambda: send_file(payload[0], conditional=True))
    with running_server(app, threads=4) as server:
        yield server


def _get(server, headers: dict[str, str] | None = None, *, slow: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    if slow:  # a small receive window: the server's sends are cut short again and again
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


def test_werkzeug_small_reads_become_whole_pieces(payload: tuple[Path, bytes]) -> None:
    path, data = payload
    with open(path, "rb") as file:
        pieces = list(FilePieces(file, 8192))  # werkzeug's send_file asks for 8 KiB
    assert [len(p) for p in pieces[:-1]] == [PIECE_BYTES] * (len(pieces) - 1)
    assert b"".join(pieces) == data
