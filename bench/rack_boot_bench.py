"""A rack powering on: N simulated hosts at once against ``xcp-provision serve``, then against
tftpd-hpa + nginx serving the same bytes as static files.

Each host does what a real one does after DHCP: the loader over TFTP (in blocks of 1468 bytes
by default, as EDK2 and iPXE ask for, ``--tftp-blksize``), its iPXE script
(``/boot/ipxe?mac=...``), the installer kernel and initrd it names, the answer file named on
the kernel command line, and build-done with its install token. Each host is one bash process
driving curl (``bench/rack_host.sh``): the clients' cost is C's, the same for every side, and
small beside the servers' (Python threads as clients used to take a share of the 2 cores large
enough to pull every ratio towards 1). The reference side answers the
same requests with the same bytes, but from static files (one host's script, one answer file, a
fixed build-done reply), so the ratio is the price of computing everything per host.

Ours runs twice: ``serve`` alone (waitress copies the release files through Python), and
behind nginx as ``deploy/nginx.conf`` sets it up for a rack (``serve`` decides, nginx sends the
release files with sendfile). All three sides stay up; every round runs the rack against each in
turn (the order rotating), every process at its default priority (printed), and the ratios are
taken per round: the rack's wall time (goal 1.10x) and each host's median time (goal 1.5x).

    .venv/bin/python bench/rack_boot_bench.py [--hosts 100] [--rounds 5] [--kernel-mib 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_bench import answer_file_url
from common.runner import run, start
from tests.support.nginx import running_nginx, shipped_nginx

# A bench measures how fast the server answers, not the install cap: every host may install.
os.environ.setdefault("XCP_PROVISION_MAX_CONCURRENT_INSTALLS", "1000000")
os.environ.setdefault("XCP_PROVISION_DISCOVERY_RATE", "0")

VENV_BIN = Path(sys.executable).parent
STATIC_SERVER = """
server {{
    listen 127.0.0.1:{port};
    sendfile on;
    root {root};
    location = /api/v1/installs/done {{ return 200 '{{"state":"installed"}}'; }}
}}
"""


@dataclass(frozen=True)
class Side:
    name: str
    tftp_port: int
    http: str  # host:port
    pid: int  # the server process whose priority is printed
    token: str | None = None  # ours: an API token, to make the hosts ready between rounds


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(address: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status, _ = request(address, "GET", "/metrics")
            if status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answers HTTP on {address}")


def request(address: str, method: str, path: str, *, token: str | None = None,
            body: dict | None = None) -> tuple[int, int]:
    """One HTTP request; returns the status and the number of body bytes read."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        size = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
        return response.status, size
    finally:
        conn.close()


def fetch_text(address: str, path: str) -> str:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        text = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {text[:200]}")
        return text
    finally:
        conn.close()


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


PHASES = ("tftp loader", "ipxe script", "kernel", "initrd", "answer file", "build-done")
HOST_CLIENT = Path(__file__).resolve().parent / "rack_host.sh"
GOAL_RACK, GOAL_HOST = 1.10, 1.5


@dataclass
class Round:
    """One side's run of the whole rack: its wall time and every host's phase seconds."""

    wall: float
    phases: list[list[float]]

    @property
    def host_median(self) -> float:
        return statistics.median(sum(host) for host in self.phases)


def rack(side: Side, macs: list[str], blksize: int) -> Round:
    """Every host at once, each one curl-driven process (bench/rack_host.sh)."""
    began = time.perf_counter()
    procs = [start(["bash", HOST_CLIENT, mac, str(side.tftp_port), side.http, str(blksize)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for mac in macs]
    outputs = [proc.communicate() for proc in procs]
    wall = time.perf_counter() - began
    failed = [(mac, err.decode()[-300:]) for mac, proc, (_, err) in zip(macs, procs, outputs,
                                                                       strict=True)
              if proc.returncode != 0]
    if failed:
        raise SystemExit(f"{side.name}: {len(failed)} hosts failed; first: {failed[0]}")
    return Round(wall, [[float(x) for x in out.split()] for out, _ in outputs])


def make_ready(side: Side, token: str, hosts: int) -> None:
    """Every host back to ready (as a reinstall does), so the next round installs again."""
    for i in range(hosts):
        status, _ = request(side.http, "POST", f"/api/v1/hosts/rack{i:03d}/reinstall",
                            token=token, body={})
        if status != 200:
            raise SystemExit(f"{side.name}: could not make rack{i:03d} ready: HTTP {status}")


@contextmanager
def ours(data: Path, macs: list[str], kernel: bytes, initrd: bytes, *,
         front: bool = False) -> Iterator[Side]:
    """serve alone, or (``front``) behind nginx as deploy/nginx.conf sets it up for a rack."""
    http_port, tftp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    front_port = free_port(socket.SOCK_STREAM)
    env = dict(os.environ)
    if front:
        env.update(XCP_PROVISION_RELEASE_ACCEL_PREFIX="/_releases/",
                   XCP_PROVISION_PUBLIC_URL=f"http://127.0.0.1:{front_port}")
    data.mkdir(parents=True)
    log = open(data.parent / f"serve-{data.name}.log", "wb")  # noqa: SIM115 (closed below)
    proc = start([VENV_BIN / "xcp-provision", "serve", "--data-dir", data, "--bind", "127.0.0.1",
                  "--http-port", str(http_port), "--tftp-port", str(tftp_port), "--no-dhcp",
                  "--demo"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        address = f"127.0.0.1:{http_port}"
        wait_for_http(address)
        release = data / "releases" / "demo"
        (release / "installer-vmlinuz").write_bytes(kernel)
        (release / "installer-initrd.img").write_bytes(initrd)
        token = run([VENV_BIN / "xcp-provision", "tokens", "create", "rack-bench",
                     "--data-dir", data]).stdout.strip().splitlines()[-1]
        for i, mac in enumerate(macs):
            status, _ = request(address, "POST", "/api/v1/hosts", token=token,
                                body={"mac": mac, "hostname": f"rack{i:03d}", "profile": "demo"})
            if status != 201:
                raise SystemExit(f"could not add host {mac}: HTTP {status}")
        if front:
            with shipped_nginx(data.parent / "front", front_port, http_port, data / "releases"):
                yield Side("ours behind nginx", tftp_port, f"127.0.0.1:{front_port}",
                           proc.pid, token)
        else:
            yield Side("ours", tftp_port, address, proc.pid, token)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@contextmanager
def reference(base: Path, script: str, answer: str, loader: Path, kernel: bytes,
              initrd: bytes, http_of_ours: str) -> Iterator[Side]:
    http_port, tftp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    address = f"127.0.0.1:{http_port}"
    www, tftp = base / "www", base / "tftp"
    for directory in (www / "boot", www / "releases" / "demo", www / "answerfile", tftp):
        directory.mkdir(parents=True, exist_ok=True)
    (tftp / "undionly.kpxe").write_bytes(loader.read_bytes())
    (www / "boot" / "ipxe").write_text(script.replace(http_of_ours, address))
    (www / "releases" / "demo" / "installer-vmlinuz").write_bytes(kernel)
    (www / "releases" / "demo" / "installer-initrd.img").write_bytes(initrd)
    (www / "answerfile" / "1").write_text(answer)
    tftpd = start(["/usr/sbin/in.tftpd", "--foreground", "--listen", "--user", "tftp",
                   "--address", f"127.0.0.1:{tftp_port}", "-s", tftp])
    try:
        with running_nginx(base / "nginx", http_port,
                           STATIC_SERVER.format(port=http_port, root=www)):
            yield Side("tftpd-hpa + nginx", tftp_port, address, tftpd.pid)
    finally:
        tftpd.terminate()
        tftpd.wait(30)


def spread(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):6.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def report(side: str, rounds: list[Round], reference: list[Round]) -> None:
    walls = [r.wall for r in rounds]
    hosts = [r.host_median for r in rounds]
    print(f"  {side}: rack {spread(walls, ' s')}, per host median {spread(hosts, ' s')}")
    phases = ", ".join(
        f"{name} {statistics.median(host[i] for r in rounds for host in r.phases):.3f}"
        for i, name in enumerate(PHASES))
    print(f"    median seconds per phase: {phases}")
    if rounds is reference:
        return
    rack_ratios = [a.wall / b.wall for a, b in zip(rounds, reference, strict=True)]
    host_ratios = [a.host_median / b.host_median for a, b in zip(rounds, reference, strict=True)]
    print(f"    / reference, per round: rack {spread(rack_ratios, 'x')} "
          f"({sum(x > GOAL_RACK for x in rack_ratios)} of {len(rounds)} over {GOAL_RACK}x), "
          f"per host median {spread(host_ratios, 'x')} "
          f"({sum(x > GOAL_HOST for x in host_ratios)} over {GOAL_HOST}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--kernel-mib", type=float, default=8)
    parser.add_argument("--initrd-mib", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tftp-blksize", type=int, default=1468,
                        help="the TFTP block size hosts ask for (firmware: 1432-1468)")  # fmt: skip
    args = parser.parse_args()
    macs = [f"52:54:01:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(args.hosts)]
    kernel = os.urandom(int(args.kernel_mib * 1024 * 1024))
    initrd = os.urandom(int(args.initrd_mib * 1024 * 1024))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rack-bench-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        alone = stack.enter_context(ours(base / "data", macs, kernel, initrd))
        front = stack.enter_context(ours(base / "data-front", macs, kernel, initrd, front=True))
        script = fetch_text(alone.http, f"/boot/ipxe?mac={macs[0]}&uuid=&serial=&arch=x86_64")
        answer = fetch_text(alone.http, local_path(answer_file_url(script, macs[0])))
        loader = base / "data" / "tftp" / "undionly.kpxe"
        ref = stack.enter_context(reference(base / "ref", script, answer, loader, kernel,
                                            initrd, alone.http))
        make_ready(alone, alone.token, args.hosts)  # the script fetched above made a token
        sides = [ref, alone, front]
        nice = ", ".join(f"{s.name} {os.getpriority(os.PRIO_PROCESS, s.pid)}" for s in sides)
        print(f"{args.hosts} hosts at once, each a bash + curl process: TFTP loader "
              f"({loader.stat().st_size} B, blksize {args.tftp_blksize}), iPXE script, kernel "
              f"{len(kernel)} B, initrd {len(initrd)} B, answer file, build-done. "
              f"{args.rounds} rounds (+{args.warmup} warm-up), the order of the sides rotating; "
              f"{os.cpu_count()} CPUs, load average {load:.1f} at start; nice: {nice}")
        results: dict[str, list[Round]] = {side.name: [] for side in sides}
        for number in range(args.warmup + args.rounds):
            turn = number % len(sides)
            for side in sides[turn:] + sides[:turn]:
                measured = rack(side, macs, args.tftp_blksize)
                if side.token:
                    make_ready(side, side.token, args.hosts)
                if number >= args.warmup:
                    results[side.name].append(measured)
        print(f"  load average {os.getloadavg()[0]:.1f} after")
        for side in sides:
            report(side.name, results[side.name], results[ref.name])


if __name__ == "__main__":
    main()
