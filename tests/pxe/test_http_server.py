"""The HTTP server itself (granian's worker on our socket): a stop lets requests in flight finish,
the app sees no process environment, and bodies arrive whole."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from typing import Any

import pytest

from pxe.httpd.server import HttpServer
from pxe.httpd.sockets import listening_socket


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
        body = b"late but whole"
    elif environ["PATH_INFO"] == "/environ":
        body = "\n".join(sorted(k for k in environ if k.isupper())).encode()
    else:  # echo the request body
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])  # fmt: skip
    return [body]


@pytest.fixture
def server() -> Any:
    sock = listening_socket("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    running = HttpServer(_app, sock, threads=4)
    running.start()
    yield running, base
    running.stop(timeout=10)


def _get(url: str, data: bytes | None = None) -> bytes:
    with urllib.request.urlopen(url, data=data, timeout=30) as response:
        return response.read()


def test_a_stop_lets_the_request_in_flight_finish(server) -> None:
    running, base = server
    answers: list[bytes] = []
    client = threading.Thread(target=lambda: answers.append(_get(f"{base}/slow")))
    client.start()
    time.sleep(0.3)  # the request is in the app now
    started = time.monotonic()
    assert running.stop(timeout=10)
    assert time.monotonic() - started > 0.4  # stop waited for it
    client.join(10)
    assert answers == [b"late but whole"]
    with pytest.raises(OSError):  # and nothing is accepted any more
        _get(f"{base}/environ")


def test_the_app_does_not_see_the_process_environment(server, monkeypatch) -> None:
    """granian's own runner starts each environ from ``os.environ``; a worker's carries
    ``serve``'s settings (a database URL with its password)."""
    _, base = server
    monkeypatch.setitem(os.environ, "XCP_PROVISION_DATABASE_URL", "postgresql://u:secret@db/x")
    names = _get(f"{base}/environ").decode().split()
    assert "XCP_PROVISION_DATABASE_URL" not in names and "PATH" not in names
    assert {"REQUEST_METHOD", "PATH_INFO", "REMOTE_ADDR", "SERVER_SOFTWARE"} <= set(names)


def test_a_large_request_body_arrives_whole(server) -> None:
    _, base = server
    body = os.urandom(3 * 1024 * 1024)
    assert _get(f"{base}/echo", data=body) == body
