"""Several HTTP worker processes on one port, kept running by ``serve``.

Why processes and not more threads: one interpreter runs one thread at a time. Under 100
concurrent requests a single process spent its time handing that lock around (boot lookups that
write fell from ~700 to ~60 a second); two processes on two cores doubled ``/healthz`` and
brought the writers back. TFTP and ProxyDHCP stay in the ``serve`` process.

Each worker has a listening socket of its own on the port (``SO_REUSEPORT``), and the kernel
spreads new connections over them. One socket shared by all wakes every worker's event loop for
each connection and lets whichever wakes first take it: with one queue per worker, the paced
answer-file bench went from p50 15 ms and 1,700 a second to p50 8 ms and 1,950 (measured with
waitress's ``select`` loop; with the epoll loop the two workers take equal shares either way).
The price is the tail under saturation: the kernel spreads connections by a hash, not by load,
so one worker's queue can grow while the other's is short (a shared queue that each worker
takes from only while few of its requests wait halved the closed loop's p99, but tripled the
median at 2,000 answer files a second; ``docs/performance.md``).
``serve`` binds and keeps every socket, so a port in use is one clear error before anything
starts, and a dead worker's replacement inherits its socket with the connections queued on it.

A worker that dies is replaced, less and less often while it keeps dying young
(:mod:`common.restarts`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.restarts import Restarts
from common.runner import start
from pxe.config import Settings

log = logging.getLogger("pxe.httpd.workers")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port``, for ``serve`` answering HTTP itself."""
    return socket.create_server((host, port), family=_family(host), backlog=1024,
                                dualstack_ipv6=_both_families(host))  # fmt: skip


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` TCP sockets listening on ``host``:``port`` together, one per worker.

    Every process of one user may join a ``SO_REUSEPORT`` group, a second ``serve`` too, and
    would then take its share of the connections unnoticed. A plain socket is bound first, so
    any listener already on the port is refused as it would be without the option (only one
    starting in the instant between that check and the group's bind gets through)."""
    family = _family(host)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT only
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0 picked one: all the sockets take it
    return [socket.create_server((host, port), family=family, backlog=1024, reuse_port=True,
                                 dualstack_ipv6=_both_families(host))
            for _ in range(count)]  # fmt: skip


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _both_families(host: str) -> bool:
    """IPv6's wildcard answers IPv4 too: hosts network-boot over IPv4 and may then be managed
    over IPv6, and both must reach the one server. Python's default would be IPv6 alone."""
    return host == "::"


@dataclass
class _Slot:
    """One place for a worker: its socket, the process in it now, how its predecessors fared."""

    number: int
    sock: socket.socket
    process: subprocess.Popen[bytes] | None = None
    restarts: Restarts = field(default_factory=Restarts)


class HttpWorkers:
    """One worker process of :mod:`pxe.httpd.worker` on each of ``socks``."""

    def __init__(
        self,
        settings: Settings,
        socks: list[socket.socket],
        run_dir: Path,
        tftp_counters: Path | None = None,
    ) -> None:
        self._slots = [_Slot(n, sock) for n, sock in enumerate(socks)]
        self._metrics_dir = run_dir / "metrics"
        self._argv = [sys.executable, "-m", "pxe.httpd.worker"]
        if tftp_counters is not None:
            self._argv += ["--tftp-counters", str(tftp_counters)]
        self._env = {
            **os.environ,
            **settings.as_environment(),
            # Each worker's counters go to files here; a scrape sums them (pxe.web.metrics).
            "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir),
        }

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process and s.process.poll() is None]

    def start(self) -> None:
        shutil.rmtree(self._metrics_dir, ignore_errors=True)  # totals restart with the server
        self._metrics_dir.mkdir(parents=True)
        for slot in self._slots:
            self._spawn(slot)

    def check(self) -> None:
        """Replace every worker that exited (call it often from the supervising loop)."""
        now = time.monotonic()
        for slot in self._slots:
            process = slot.process
            if process is not None and process.poll() is not None:
                lived, delay = slot.restarts.died(now)
                slot.process = None
                log.error(
                    "HTTP worker %d (pid %d) exited with status %d after %.0f s; "
                    "starting another in %.0f s",
                    slot.number, process.pid, process.returncode, lived, delay,
                )  # fmt: skip
            if slot.process is None and slot.restarts.due(now):
                self._spawn(slot)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every worker (each finishes its in-flight requests), SIGKILL the late."""
        running = [s.process for s in self._slots if s.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("HTTP worker pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
        for slot in self._slots:
            slot.process = None
        shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _spawn(self, slot: _Slot) -> None:
        fd = slot.sock.fileno()
        slot.process = start([*self._argv, "--fd", str(fd)], env=self._env, pass_fds=(fd,))
        slot.restarts.began(time.monotonic())
        log.debug("HTTP worker %d started (pid %d)", slot.number, slot.process.pid)
