"""TFTP: one loader to many concurrent curl clients, our TftpService against tftpd-hpa.

Prints the wall time for every server (median of a few rounds, rounds interleaved so machine
noise hits all sides alike) and the ratio to tftpd-hpa. Stock tftpy's own listen() is measured
too, as the baseline the wrap has to beat.

    .venv/bin/python bench/tftp_bench.py [--clients 50] [--size-mib 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tftpy

from installer.runner import start
from pxe.tftp.server import TftpService


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def tftpd_hpa(root: Path) -> Iterator[int]:
    port = free_udp_port()
    proc = start(["/usr/sbin/in.tftpd", "--foreground", "--listen", "--user", "tftp",
                  "--address", f"127.0.0.1:{port}", "-s", str(root)])
    time.sleep(0.3)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def ours(root: Path) -> Iterator[int]:
    service = TftpService(root, lambda _path, _client: None, host="127.0.0.1", port=0)
    service.start()
    try:
        yield service.port
    finally:
        service.stop()


@contextmanager
def stock_tftpy(root: Path) -> Iterator[int]:
    server = tftpy.TftpServer(str(root))
    thread = threading.Thread(target=server.listen, args=("127.0.0.1", 0), daemon=True)
    thread.start()
    server.is_running.wait(5)
    try:
        yield server.listenport
    finally:
        server.stop(now=True)
        thread.join(10)


def fetch_all(port: int, clients: int, blksize: int, out: Path, expected: bytes) -> float:
    """Start every client at once; the figure is the time until the last one finished."""
    began = time.perf_counter()
    procs = [
        start(["curl", "-sS", "--max-time", "120", "--tftp-blksize", str(blksize),
               "-o", str(out / f"c{i}"), f"tftp://127.0.0.1:{port}/loader.bin"])
        for i in range(clients)
    ]
    codes = [proc.wait() for proc in procs]
    elapsed = time.perf_counter() - began
    bad = [i for i, code in enumerate(codes) if code != 0]
    bad += [i for i in range(clients) if (out / f"c{i}").read_bytes() != expected]
    if bad:
        raise SystemExit(f"{len(set(bad))} of {clients} clients failed or got wrong bytes")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--size-mib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blksize", type=int, action="append")
    parser.add_argument("--no-stock", action="store_true", help="skip stock tftpy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = args.blksize or [512, 1468]
    servers: dict[str, Callable[[Path], object]] = {"tftpd-hpa": tftpd_hpa, "ours": ours}
    if not args.no_stock:
        servers["stock tftpy"] = stock_tftpy
    with tempfile.TemporaryDirectory(prefix="tftp-bench-") as tmp:
        root, out = Path(tmp, "root"), Path(tmp, "out")
        root.mkdir()
        out.mkdir()
        os.chmod(tmp, 0o755)
        payload = os.urandom(int(args.size_mib * 1024 * 1024))
        (root / "loader.bin").write_bytes(payload)
        print(f"{args.clients} concurrent curl clients, {len(payload)} bytes each, "
              f"median of {args.rounds} rounds, {os.cpu_count()} CPUs")
        for blksize in sizes:
            times: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, serve in servers.items():
                    with serve(root) as port:
                        times[name].append(fetch_all(port, args.clients, blksize, out, payload))
            reference = statistics.median(times["tftpd-hpa"])
            for name, values in times.items():
                median = statistics.median(values)
                print(f"  blksize {blksize:5d}  {name:12s} {median:7.3f} s  "
                      f"ratio {median / reference:5.2f}x  (rounds: "
                      + ", ".join(f"{v:.3f}" for v in values) + ")")


if __name__ == "__main__":
    main()
