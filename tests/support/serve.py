"""``xcp-provision serve`` as a real process, for tests and benches: free ports, start, wait
until ``/healthz`` answers, stop with SIGTERM (then kill) even when the caller fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from common import runner, wire

EXE = Path(sys.executable).parent / "xcp-provision"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port free right now (TCP by default; ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60) -> bytes:
    """``/healthz``'s body once the server answers; raises if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
                return resp.read()
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


@contextmanager
def serve_process(
    data_dir: Path,
    *args: str,
    http_port: int | None = None,
    env: Mapping[str, str] | None = None,
    output: int | IO[bytes] = subprocess.DEVNULL,
    bind: str = "127.0.0.1",
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``serve`` on ``bind`` (loopback unless told) with ``args`` (``--tftp-port 0
    --no-dhcp``, ``--demo``, ...) and yield its base URL (loopback's for a wildcard bind) and
    process once it is healthy. Entered from a thread inside a network namespace, the server
    runs there."""
    port = http_port or free_port()
    proc = runner.start(
        [EXE, "serve", "--data-dir", data_dir, "--bind", bind, "--http-port", str(port), *args],
        stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )  # fmt: skip
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)  # a wildcard: ask loopback
    base = f"http://{wire.authority(host, port)}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        stop(proc)
