"""The Flask app behind granian's RSGI interface, run in a thread pool: a contender in
``bench/wsgi_bench.py``.

Why measure it: granian's WSGI worker keeps a Python thread per response body still being sent,
so ``serve`` cannot use it (``docs/performance.md``). Under RSGI, file bodies could go out from
granian's Rust runtime (``response_file_range``) and hold no thread, with the app's other
requests run here. Whether the app keeps granian's speed when each request crosses from its
asyncio loop into a thread pool is what this contender answers; it takes the bench's GET
requests only and sends every body as bytes.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_HEADER_KEYS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


class RsgiBridge:
    """An RSGI application (granian calls ``__rsgi__``) running ``app`` in ``threads`` threads."""

    def __init__(self, app: WsgiApp, threads: int) -> None:
        self._app = app
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rsgi-app")
        self._base: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.errors": sys.stderr,
            "wsgi.input_terminated": True,
            "wsgi.multiprocess": True,
            "wsgi.multithread": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        server_host, _, server_port = scope.server.rpartition(":")
        client_host, _, client_port = scope.client.rpartition(":")
        environ = self._base | {
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": scope.path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": client_port,
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(await proto()),
        }
        for name, value in scope.headers.items():
            key = _HEADER_KEYS.get(name) or "HTTP_" + name.upper().replace("-", "_")
            environ[key] = value
        loop = asyncio.get_running_loop()
        status, headers, body = await loop.run_in_executor(self._pool, self._call, environ)
        proto.response_bytes(status, headers, body)

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: object = None) -> None:  # fmt: skip
            started[:] = [int(status.split(" ", 1)[0]), headers]

        body = self._app(environ, start_response)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return started[0], started[1], data
