"""A rack powering on: N simulated hosts at once against ``xcp-provision serve``, then against
tftpd-hpa + nginx serving the same bytes as static files.

Each host does what a real one does after DHCP: the loader over TFTP (curl), its iPXE script
(``/boot/ipxe?mac=...``), the installer kernel and initrd it names, the answer file named on
the kernel command line, and build-done with its install token. The reference side answers the
same requests with the same bytes, but from static files (one host's script, one answer file, a
fixed build-done reply), so the ratio is the price of computing everything per host.

Ours runs twice: ``serve`` alone (waitress copies the release files through Python), then
behind nginx as ``deploy/nginx.conf`` sets it up for a rack (``serve`` decides, nginx sends the
release files with sendfile).

    .venv/bin/python bench/rack_boot_bench.py [--hosts 100] [--kernel-mib 8] [--initrd-mib 16]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def boot_one(side: Side, mac: str, out: Path) -> list[float]:
    """One host's boot, as the server sees it; returns the seconds of each phase."""
    marks = [time.perf_counter()]
    loader = out / f"{side.name}-{mac.replace(':', '')}.kpxe"
    run(["curl", "-sS", "--max-time", "120", "-o", str(loader),
         f"tftp://127.0.0.1:{side.tftp_port}/undionly.kpxe"])
    marks.append(time.perf_counter())
    script = fetch_text(side.http, f"/boot/ipxe?mac={mac}&uuid=&serial=&arch=x86_64")
    kernel = re.search(r"^kernel (\S+) (.*?)(?: \|\| goto failed)?$", script, re.M)
    initrd = re.search(r"^initrd (\S+)", script, re.M)
    if not kernel or not initrd:
        raise RuntimeError(f"{side.name}: no install script for {mac}:\n{script}")
    answer_url = re.search(r"answerfile=(\S+)", kernel.group(2)).group(1)
    token = re.search(r"token=([^&\s]+)", answer_url).group(1)
    marks.append(time.perf_counter())
    for url in (kernel.group(1), initrd.group(1), answer_url):
        status, _ = request(side.http, "GET", local_path(url))
        if status != 200:
            raise RuntimeError(f"{side.name}: GET {url}: {status}")
        marks.append(time.perf_counter())
    status, _ = request(side.http, "POST", "/api/v1/installs/done", token=token, body={})
    if status != 200:
        raise RuntimeError(f"{side.name}: build-done for {mac}: {status}")
    marks.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(marks)]


def rack(side: Side, macs: list[str], out: Path) -> tuple[float, list[list[float]]]:
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(macs)) as pool:
        per_host = list(pool.map(lambda mac: boot_one(side, mac, out), macs))
    return time.perf_counter() - began, per_host


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
                yield Side("ours behind nginx", tftp_port, f"127.0.0.1:{front_port}")
        else:
            yield Side("ours", tftp_port, address)
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
            yield Side("tftpd-hpa + nginx", tftp_port, address)
    finally:
        tftpd.terminate()
        tftpd.wait(30)


def summary(name: str, total: float, phases: list[list[float]], reference_total: float) -> str:
    per_host = [sum(host) for host in phases]
    medians = ", ".join(f"{phase} {statistics.median(host[i] for host in phases):.2f}"
                        for i, phase in enumerate(PHASES))
    return (f"  {name:18s} {total:7.2f} s for the rack, ratio {total / reference_total:5.2f}x; "
            f"per host median {statistics.median(per_host):.2f} s, max {max(per_host):.2f} s\n"
            f"  {'':18s} median seconds per phase: {medians}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--kernel-mib", type=float, default=8)
    parser.add_argument("--initrd-mib", type=float, default=16)
    args = parser.parse_args()
    macs = [f"52:54:01:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(args.hosts)]
    kernel = os.urandom(int(args.kernel_mib * 1024 * 1024))
    initrd = os.urandom(int(args.initrd_mib * 1024 * 1024))
    with tempfile.TemporaryDirectory(prefix="rack-bench-") as tmp:
        base = Path(tmp)
        out = base / "out"
        out.mkdir()
        results: dict[str, tuple[float, list[list[float]]]] = {}
        references: dict[str, tuple[float, list[list[float]]]] = {}
        for front in (False, True):
            data = base / ("data-front" if front else "data")
            with ours(data, macs, kernel, initrd, front=front) as side:
                script = fetch_text(side.http,
                                    f"/boot/ipxe?mac={macs[0]}&uuid=&serial=&arch=x86_64")
                answer_url = re.search(r"answerfile=(\S+)", script).group(1)
                answer = fetch_text(side.http, local_path(answer_url))
                loader = data / "tftp" / "undionly.kpxe"
                # The reference runs while our server is up but idle, so both see the same
                # load, and first, so that ours does not get a cache the reference warmed.
                with reference(base / f"ref-{data.name}", script, answer, loader, kernel,
                               initrd, side.http) as ref:
                    references[side.name] = rack(ref, macs, out)
                results[side.name] = rack(side, macs, out)
        print(f"{args.hosts} hosts at once: TFTP loader ({loader.stat().st_size} bytes), iPXE "
              f"script, kernel {len(kernel)} B, initrd {len(initrd)} B, answer file, "
              f"build-done; {os.cpu_count()} CPUs. Each side of ours is measured right after "
              "its own run of the reference (tftpd-hpa + nginx).")
        for name, (total, phases) in results.items():
            reference_total, reference_phases = references[name]
            print(summary("reference", reference_total, reference_phases, reference_total))
            print(summary(name, total, phases, reference_total))


if __name__ == "__main__":
    main()
