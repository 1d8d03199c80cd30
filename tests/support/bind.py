"""A real BIND 9 ``named`` for the DNS tests: loopback only, a free port, a TSIG key, a forward
zone and a reverse zone for each address family.

Started in the foreground (``-g``) from a config written into a temporary directory, so nothing
of the system's BIND is touched, and stopped at teardown even when a test fails. The zones accept
dynamic updates signed with the test key only, which is what the server will meet in a datacenter.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from common import runner
from lab.named import ALGORITHM, write_named_conf

FORWARD_ZONE = "xcp.test."
REVERSE_ZONE = "2.0.192.in-addr.arpa."
REVERSE6_ZONE = "8.b.d.0.1.0.0.2.ip6.arpa."  # 2001:db8::/32
# Records that exist before any test runs, for the conflict tests.
STATIC_NAME = "taken"
STATIC_ADDRESS = "192.0.2.200"
STATIC_PTR_ADDRESS = "192.0.2.201"
STATIC_PTR_TARGET = "someone-else.xcp.test."
KEY_NAME = "xcp-test-key"


@dataclass(frozen=True)
class BindServer:
    host: str
    port: int
    forward_zone: str
    reverse_zone: str
    reverse6_zone: str
    key_name: str
    algorithm: str
    secret: str
    key_file: Path
    workdir: Path

    def settings_mapping(self) -> dict[str, object]:
        """The ``[dns]`` settings a server would be configured with to use this BIND."""
        return {
            "server": self.host,
            "port": self.port,
            "forward_zone": self.forward_zone,
            # Comma-separated, as the environment gives it (bench/register_bench.py).
            "reverse_zones": f"{self.reverse_zone},{self.reverse6_zone}",
            "key_name": self.key_name,
            "algorithm": self.algorithm,
            "secret_file": str(self.key_file),
        }

    def query(self, name: str, rdtype: str) -> list[str]:
        """Ask this server directly (TCP, no recursion) and return the answer's values."""
        request = dns.message.make_query(name, rdtype)
        request.flags &= ~dns.flags.RD
        response = dns.query.tcp(request, self.host, port=self.port, timeout=5)
        wanted = dns.rdatatype.from_text(rdtype)
        return sorted(
            rdata.to_text()
            for rrset in response.answer
            if rrset.rdtype == wanted
            for rdata in rrset
        )


def _free_port(host: str) -> int:
    """A port free for both TCP and UDP on ``host`` (named listens on both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port


def _zone_files(workdir: Path) -> None:
    soa = "@ 300 IN SOA ns.xcp.test. hostmaster.xcp.test. 1 3600 600 86400 300\n"
    (workdir / "forward.zone").write_text(
        "$TTL 300\n"
        f"$ORIGIN {FORWARD_ZONE}\n" + soa + "@ IN NS ns\n"
        "ns IN A 127.0.0.1\n"
        f"{STATIC_NAME} IN A {STATIC_ADDRESS}\n"
        f"alias IN CNAME {STATIC_NAME}\n"
    )
    last_octet = STATIC_PTR_ADDRESS.rsplit(".", 1)[1]
    (workdir / "reverse.zone").write_text(
        "$TTL 300\n"
        f"$ORIGIN {REVERSE_ZONE}\n" + soa + "@ IN NS ns.xcp.test.\n"
        f"{last_octet} IN PTR {STATIC_PTR_TARGET}\n"
    )
    (workdir / "reverse6.zone").write_text(
        f"$TTL 300\n$ORIGIN {REVERSE6_ZONE}\n" + soa + "@ IN NS ns.xcp.test.\n"
    )


def _config(workdir: Path, host: str, port: int, secret: str) -> Path:
    # named listens on ``host`` alone, in its family (an IPv6 one: in a test's namespace).
    return write_named_conf(
        workdir,
        [(FORWARD_ZONE, "forward.zone"), (REVERSE_ZONE, "reverse.zone"),
         (REVERSE6_ZONE, "reverse6.zone")],
        listen=("none", host) if ":" in host else (host, "none"),
        port=port,
        key=(KEY_NAME, secret),
        key_file=workdir / "tsig.key",
    )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"named exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            dns.query.tcp(dns.message.make_query(FORWARD_ZONE, "SOA"), host, port=port, timeout=1)
        except (OSError, dns.exception.DNSException):
            time.sleep(0.1)
            continue
        return
    raise RuntimeError(f"named did not answer on {host}:{port} in 20 s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_bind(workdir: Path, host: str = "127.0.0.1") -> Iterator[BindServer]:
    """Start ``named`` serving the test zones from ``workdir`` on ``host`` (IPv4 or IPv6);
    stop it on exit. Entered from a thread inside a network namespace, it runs there."""
    workdir.mkdir(parents=True, exist_ok=True)
    _zone_files(workdir)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    port = _free_port(host)
    conf = _config(workdir, host, port, secret)
    log = workdir / "named.log"
    with log.open("wb") as log_stream:
        proc = runner.start(
            ["named", "-g", "-n", "1", "-c", str(conf)],
            stdout=log_stream,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, host, port, log)
        yield BindServer(
            host=host,
            port=port,
            forward_zone=FORWARD_ZONE,
            reverse_zone=REVERSE_ZONE,
            reverse6_zone=REVERSE6_ZONE,
            key_name=KEY_NAME,
            algorithm=ALGORITHM,
            secret=secret,
            key_file=workdir / "tsig.key",
            workdir=workdir,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
