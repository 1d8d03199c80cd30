"""TFTP: one loader to many concurrent curl clients, our TftpService against tftpd-hpa.

Every server runs in its own process (as ``serve`` runs ours), started once and fed rounds in
turn, the order rotating every round, so a burst of load on this shared machine hits all sides
alike. A warm-up round is not counted. For each server the bench prints the wall time until the
last client finished (median and range over the rounds) and, with ``perf``, the CPU time of
the server and of every child it forked meanwhile. The ratio to tftpd-hpa is taken per round,
between runs done back to back, and printed as median, range and how many rounds missed the
1.25x goal: one median alone hid how noisy these figures are on 2 cores shared with the curl
clients (and other users), where a one-thread server gets one share of the CPU and tftpd-hpa one
per transfer. The CPU time is the steadier figure of what each server costs.

    .venv/bin/python bench/tftp_bench.py [--clients 50] [--size-mib 1] [--rounds 7] [--stock]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tftpy

from common.runner import start
from pxe.tftp.server import TftpService

GOAL = 1.25
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A TFTP server process the rounds are run against, and its figures."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


@contextmanager
def counting_cpu(server: Server, scratch: Path) -> Iterator[None]:
    """Count the CPU time of the server and of every child it forks meanwhile (tftpd-hpa forks
    one per transfer and ignores SIGCHLD, so the kernel keeps no total for them) with
    ``perf stat``, and of the children already running (our pumps); without perf, no CPU
    figure."""
    if shutil.which("perf") is None:
        yield
        return
    out = scratch / "perf.csv"
    # The children running already count too: our TFTP pumps, started with the service.
    pid = server.proc.pid
    pids = [pid, *Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    perf = start(["perf", "stat", "-x,", "-e", "task-clock", "-o", str(out),
                  "-p", ",".join(map(str, pids))], stderr=subprocess.DEVNULL)
    time.sleep(0.2)  # attached
    try:
        yield
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    for line in out.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] == "task-clock" and fields[0]:
            server.cpus.append(float(fields[0]) / 1000)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def tftpd_hpa(root: Path) -> Iterator[Server]:
    port = free_udp_port()
    proc = start(["/usr/sbin/in.tftpd", "--foreground", "--listen", "--user", "tftp",
                  "--address", f"127.0.0.1:{port}", "-s", str(root)])
    try:
        time.sleep(0.3)
        yield Server("tftpd-hpa", proc, port)
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def python_server(kind: str, root: Path) -> Iterator[Server]:
    """This script again, as ``--serve KIND``: it prints its port and serves until stdin closes."""
    proc = start([sys.executable, __file__, "--serve", kind, "--root", str(root)],
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline())
        yield Server("ours" if kind == "ours" else "stock tftpy", proc, port)
    finally:
        proc.stdin.close()
        if proc.wait(10) != 0:
            raise SystemExit(f"the {kind} server exited with {proc.returncode}")


def serve(kind: str, root: Path) -> None:
    """The child side of :func:`python_server`; logs at INFO, as ``serve`` does, to nowhere."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C on the bench: the parent stops us
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    if kind == "ours":
        service = TftpService(root, lambda _path, _client: None, host="127.0.0.1", port=0)
        service.start()
        port, stop = service.port, service.stop
    else:
        server = tftpy.TftpServer(str(root))
        thread = threading.Thread(target=server.listen, args=("127.0.0.1", 0), daemon=True)
        thread.start()
        server.is_running.wait(5)
        port, stop = server.listenport, lambda: server.stop(now=True)
    print(port, flush=True)
    sys.stdin.read()
    stop()


def fetch_all(server: Server, clients: int, blksize: int, out: Path, expected: bytes) -> None:
    """Start every client at once; the figure is the time until the last one finished."""
    with counting_cpu(server, out):
        codes = _fetch(server, clients, blksize, out)
    bad = [i for i, code in enumerate(codes) if code != 0]
    bad += [i for i in range(clients) if (out / f"c{i}").read_bytes() != expected]
    if bad:
        raise SystemExit(f"{server.name}: {len(set(bad))} of {clients} clients failed or got "
                         "wrong bytes")


def _fetch(server: Server, clients: int, blksize: int, out: Path) -> list[int]:
    began = time.perf_counter()
    procs = [
        start(["curl", "-sS", "--max-time", "120", "--tftp-blksize", str(blksize),
               "-o", str(out / f"c{i}"), f"tftp://127.0.0.1:{server.port}/loader.bin"])
        for i in range(clients)
    ]
    codes = [proc.wait() for proc in procs]
    server.walls.append(time.perf_counter() - began)
    time.sleep(0.05)  # the last ACKs reach the servers
    return codes


def spread(values: list[float], unit: str = " s") -> str:
    return (f"{statistics.median(values):6.3f}{unit} [{min(values):.3f}-{max(values):.3f}]")


def report(servers: list[Server]) -> None:
    reference = servers[0]
    for server in servers:
        cpu = f"   server CPU {spread(server.cpus)}" if server.cpus else ""
        print(f"    {server.name:12s} wall {spread(server.walls)}{cpu}")
    for server in servers[1:]:
        ratios = [ours / ref for ours, ref in zip(server.walls, reference.walls, strict=True)]
        over = sum(ratio > GOAL for ratio in ratios)
        cpu = ""
        if server.cpus and reference.cpus:
            cpu = (f"; CPU ratio "
                   f"{statistics.median(server.cpus) / statistics.median(reference.cpus):.2f}x")
        print(f"    {server.name} / {reference.name}: wall ratio per round {spread(ratios, 'x')}"
              f", {over} of {len(ratios)} rounds over {GOAL}x{cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--size-mib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--blksize", type=int, action="append")
    parser.add_argument("--stock", action="store_true", help="also measure stock tftpy")
    parser.add_argument("--serve", choices=["ours", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.root)
        return
    starters: list[Callable[[Path], AbstractContextManager[Server]]] = [
        tftpd_hpa, lambda r: python_server("ours", r)]
    if args.stock:
        starters.append(lambda r: python_server("stock", r))
    with tempfile.TemporaryDirectory(prefix="tftp-bench-") as tmp:
        root, out = Path(tmp, "root"), Path(tmp, "out")
        root.mkdir()
        out.mkdir()
        os.chmod(tmp, 0o755)
        payload = os.urandom(int(args.size_mib * 1024 * 1024))
        (root / "loader.bin").write_bytes(payload)
        print(f"{args.clients} concurrent curl clients, {len(payload)} bytes each, "
              f"{args.rounds} rounds (+{args.warmup} warm-up), {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start")
        for blksize in args.blksize or [512, 1468]:
            with ExitStack() as stack:
                servers = [stack.enter_context(starter(root)) for starter in starters]
                for round_ in range(args.warmup + args.rounds):
                    turn = round_ % len(servers)
                    for server in servers[turn:] + servers[:turn]:
                        fetch_all(server, args.clients, blksize, out, payload)
                    if round_ < args.warmup:
                        for server in servers:
                            server.walls.clear()
                            server.cpus.clear()
                print(f"  blksize {blksize} (load average {os.getloadavg()[0]:.1f} after)")
                report(servers)


if __name__ == "__main__":
    main()
