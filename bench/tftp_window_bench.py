"""TFTP windows (RFC 7440) over a link with latency: one 1 MiB loader, as one firmware fetches it.

Lock-step TFTP pays a round trip per block, so latency, not bandwidth, sets a loader's time on
a routed provisioning network. The client is atftp (C), which asks for a window when told to, as
EDK2's client does; tftpd-hpa, which grants none, is the reference. This kernel has no netem, so
the latency comes from a relay in this process that holds every datagram ``--delay-ms`` in each
direction before passing it on (asyncio timers: at least that, up to a millisecond more); every
server is measured through the same relay. Servers run at the same CPU priority (printed), in
their own processes, the order of the cases rotating every round; the figure per case is the
median and range over the rounds, and the ratio to tftpd-hpa is taken per round.

    .venv/bin/python bench/tftp_window_bench.py [--rounds 7] [--delay-ms 1] [--size-mib 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tftp_bench import python_server, spread, tftpd_hpa

BLKSIZE = 1468


class _Session:
    """One client's transfer through the relay: its own socket towards the client (the TID the
    client sees) and one towards the server (which learns the server's TID from its first
    answer)."""

    def __init__(self, relay: DelayRelay, client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client
        self.server_tid: tuple[str, int] | None = None
        self.upstream: asyncio.DatagramTransport | None = None
        self.downstream: asyncio.DatagramTransport | None = None

    def from_server(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server_tid = addr
        self.relay.later(self.downstream, data, self.client)

    def from_client(self, data: bytes) -> None:
        if self.server_tid is not None:
            self.relay.later(self.upstream, data, self.server_tid)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, handle) -> None:
        self.handle = handle

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handle(data, addr)


class DelayRelay:
    """A TFTP-aware UDP relay on 127.0.0.1 that delays every datagram, in a thread of its own."""

    def __init__(self, server_port: int, delay: float) -> None:
        self.server = ("127.0.0.1", server_port)
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.sessions: dict[tuple[str, int], _Session] = {}
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        listen, _ = self.loop.run_until_complete(self.loop.create_datagram_endpoint(
            lambda: _Receiver(self._request), local_addr=("127.0.0.1", 0)))
        self.port = listen.get_extra_info("sockname")[1]
        ready.set()
        self.loop.run_forever()

    def later(self, transport: asyncio.DatagramTransport | None, data: bytes,
              addr: tuple[str, int]) -> None:
        if transport is not None:
            self.loop.call_later(self.delay, transport.sendto, data, addr)

    def _request(self, data: bytes, client: tuple[str, int]) -> None:
        if client in self.sessions:
            return
        session = self.sessions[client] = _Session(self, client)
        self.loop.create_task(self._open(session, data))

    async def _open(self, session: _Session, request: bytes) -> None:
        session.upstream, _ = await self.loop.create_datagram_endpoint(
            lambda: _Receiver(session.from_server), local_addr=("127.0.0.1", 0))
        session.downstream, _ = await self.loop.create_datagram_endpoint(
            lambda: _Receiver(lambda data, _addr: session.from_client(data)),
            local_addr=("127.0.0.1", 0))
        self.later(session.upstream, request, self.server)

    def close(self) -> None:
        def stop() -> None:
            for session in self.sessions.values():
                for transport in (session.upstream, session.downstream):
                    if transport is not None:
                        transport.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)


@dataclass
class Case:
    name: str
    server: str  # which server process
    window: int | None  # the windowsize the client asks for
    walls: list[float] = field(default_factory=list)


def fetch(relay_port: int, window: int | None, out: Path, expected: bytes) -> float:
    argv = ["atftp", "--option", f"blksize {BLKSIZE}"]
    if window:
        argv += ["--option", f"windowsize {window}"]
    argv += ["-g", "-r", "loader.bin", "-l", str(out), "127.0.0.1", str(relay_port)]
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0 or out.read_bytes() != expected:
        raise SystemExit(f"atftp (window {window}) failed: {proc.stderr.strip()[-300:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--size-mib", type=float, default=1.0)
    parser.add_argument("--window", type=int, action="append",
                        help="windows to ask ours for (default 4, 16, 64)")
    args = parser.parse_args()
    cases = [Case("tftpd-hpa", "tftpd-hpa", None), Case("ours, lock-step", "ours", None)]
    cases += [Case(f"ours, window {w}", "ours", w) for w in args.window or [4, 16, 64]]
    with tempfile.TemporaryDirectory(prefix="tftp-window-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp, "root")
        root.mkdir()
        os.chmod(tmp, 0o755)
        payload = os.urandom(int(args.size_mib * 1024 * 1024))
        (root / "loader.bin").write_bytes(payload)
        servers = {"tftpd-hpa": stack.enter_context(tftpd_hpa(root)),
                   "ours": stack.enter_context(python_server("ours", root))}
        relays = {}
        for name, server in servers.items():
            relays[name] = DelayRelay(server.port, args.delay_ms / 1000)
            stack.callback(relays[name].close)
        nice = {name: os.getpriority(os.PRIO_PROCESS, s.proc.pid) for name, s in servers.items()}
        print(f"one atftp client, {len(payload)} bytes, blksize {BLKSIZE}, {args.delay_ms} ms "
              f"added each way, {args.rounds} rounds (+{args.warmup} warm-up), "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
              f"nice: {', '.join(f'{k} {v}' for k, v in nice.items())}")
        for round_ in range(args.warmup + args.rounds):
            turn = round_ % len(cases)
            for case in cases[turn:] + cases[:turn]:
                wall = fetch(relays[case.server].port, case.window, Path(tmp, "out"), payload)
                if round_ >= args.warmup:
                    case.walls.append(wall)
        reference = cases[0]
        for case in cases:
            ratios = [a / b for a, b in zip(case.walls, reference.walls, strict=True)]
            print(f"  {case.name:18s} {spread(case.walls)}   / tftpd-hpa {spread(ratios, 'x')}")
        print(f"  load average {os.getloadavg()[0]:.1f} after; "
              f"median speed-up of window {cases[-1].window} over lock-step: "
              f"{statistics.median(cases[1].walls) / statistics.median(cases[-1].walls):.1f}x")


if __name__ == "__main__":
    main()
