"""A small real HTTP server on loopback for installer tests.

It serves a directory (a release, answer files, stage scripts) with ``Range`` support, can cut
one transfer midway to prove that downloads resume, and records every POST (progress events) with
its ``Authorization`` header, standing in for the provisioning server's install API.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class Post:
    path: str
    authorization: str | None
    body: dict


@dataclass
class Get:
    path: str
    range: str | None
    status: int


@dataclass
class _State:
    root: Path
    gets: list[Get] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)
    post_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with self.state.lock:
            self.state.posts.append(
                Post(self.path, self.headers.get("Authorization"), json.loads(raw or b"{}"))
            )
            status = self.state.post_status
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def _serve(self, *, body: bool) -> None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = (self.state.root / rel).resolve()
        wanted = self.headers.get("Range")
        if not path.is_file() or self.state.root.resolve() not in path.parents:
            self._record(wanted, 404)
            self.send_error(404)
            return
        size = path.stat().st_size
        start = 0
        match = _RANGE.match(wanted or "")
        if match:
            start = int(match.group(1))
            if start >= size:
                self._record(wanted, 416)
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            status = 206
        else:
            self.send_response(200)
            status = 200
        self._record(wanted, status)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        with self.state.lock:
            cut = self.state.cuts.pop("/" + rel, None)
        with open(path, "rb") as fh:
            fh.seek(start)
            sent = 0
            while chunk := fh.read(1 << 16):
                if cut is not None and sent + len(chunk) >= cut:
                    self.wfile.write(chunk[: cut - sent])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                sent += len(chunk)

    def _record(self, wanted: str | None, status: int) -> None:
        with self.state.lock:
            self.state.gets.append(Get(self.path, wanted, status))


class ReleaseServer:
    """``with ReleaseServer(dir) as srv: srv.url``; port chosen by the kernel."""

    def __init__(self, root: Path) -> None:
        self._state = _State(Path(root))
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def gets(self) -> list[Get]:
        with self._state.lock:
            return list(self._state.gets)

    @property
    def posts(self) -> list[Post]:
        with self._state.lock:
            return list(self._state.posts)

    def cut_once(self, url_path: str, after_bytes: int) -> None:
        """The next GET of ``url_path`` sends ``after_bytes`` bytes, then drops the connection."""
        with self._state.lock:
            self._state.cuts[url_path] = after_bytes

    def answer_posts_with(self, status: int) -> None:
        with self._state.lock:
            self._state.post_status = status

    def __enter__(self) -> ReleaseServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
