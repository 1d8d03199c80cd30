"""UEFI HTTP Boot from ``serve --tftp-port 0``: the offer, the loader over HTTP, the boot event.

``serve`` runs as a real process in a server namespace joined by a veth pair to a client
namespace, TFTP off, with neither public URL nor server address configured (so the addresses in
the offer are the serving interface's). The client plays the firmware: it broadcasts an
``HTTPClient`` DISCOVER, takes the URL from the OFFER and fetches it with curl, as HTTP Boot does
(HEAD for size and type, then GET).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from support.netns import Link, ipv4_link, veth_link
from support.serve import EXE, serve_process, stop
from test_dhcp_proxy import BROADCAST, Client, http_discover, pxe_packet

from common import runner
from common.runner import run
from pxe.dhcp import options as opt
from pxe.dhcp.packet import DhcpPacket

SERVER_IP = "10.98.0.1"
CLIENT_IP = "10.98.0.2"
HTTP_PORT = 8080
LOADER = Path("/usr/lib/ipxe/snponly.efi")

pytestmark = pytest.mark.root


@dataclass(frozen=True)
class Served:
    link: Link
    data_dir: Path
    log: Path

    @property
    def base(self) -> str:
        return f"http://{SERVER_IP}:{HTTP_PORT}"

    def curl(self, *args: str) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.link.host_ns, "curl", "-sS",
                    "--max-time", "10", *args], check=False)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tag = f"hb{os.getpid() % 100000}"
    data_dir = tmp_path_factory.mktemp("httpboot") / "data"
    log = data_dir.parent / "serve.log"
    with contextlib.ExitStack() as stack:
        link = ipv4_link(stack.enter_context(veth_link(tag, host_if=f"{tag}c")),
                         f"{SERVER_IP}/24", f"{CLIENT_IP}/24")
        run([EXE, "hosts", "add", "--mac", "52:54:00:ab:cd:16", "--data-dir", data_dir])
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("XCP_PROVISION_")}  # fmt: skip
        with open(log, "wb") as out:
            proc = runner.start(
                ["ip", "netns", "exec", link.server_ns, EXE, "serve", "--data-dir", data_dir,
                 "--http-port", str(HTTP_PORT), "--tftp-port", "0", "--workers", "2"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        stack.callback(stop, proc)  # before the namespaces go
        served = Served(link, data_dir, log)
        deadline = time.monotonic() + 60
        while served.curl("-f", f"{served.base}/healthz").returncode != 0:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield served


def exchange(served: Served, packet: DhcpPacket, timeout: float = 2.0) -> list[DhcpPacket]:
    return Client(served.link).exchange(packet, BROADCAST, timeout=timeout)


def test_http_boot_offer_then_the_loader_over_http(served):
    [offer] = exchange(served, http_discover(0x9001))
    url = f"{served.base}/loaders/snponly.efi"
    assert offer.options[opt.VENDOR_CLASS] == b"HTTPClient"
    assert offer.options[opt.BOOTFILE] == offer.file == url.encode()
    assert offer.siaddr == IPv4Address(SERVER_IP)
    assert offer.yiaddr == IPv4Address(0)

    head = served.curl("-I", url)
    assert head.stdout.startswith("HTTP/1.1 200"), head.stdout + head.stderr
    headers = {k.lower(): v.strip() for k, _, v in
               (line.partition(":") for line in head.stdout.splitlines()[1:] if ":" in line)}
    assert headers["content-type"] == "application/efi"
    assert int(headers["content-length"]) == LOADER.stat().st_size

    target = served.data_dir.parent / "fetched.efi"
    got = served.curl("-f", "-o", str(target), "-w", "%{content_type}", url)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "application/efi"
    assert target.read_bytes() == LOADER.read_bytes()


@pytest.mark.parametrize("path", ["ipxe.pxe", "..%2F..%2Finventory.sqlite3", "grub", "nope.efi"])
def test_only_known_loaders_are_served(served, path):
    answer = served.curl("-o", "/dev/null", "-w", "%{http_code}",
                         f"{served.base}/loaders/{path}")
    assert answer.stdout == "404"


def test_with_tftp_off_pxe_firmware_gets_nothing_and_ipxe_gets_its_script(served):
    assert exchange(served, pxe_packet(opt.DISCOVER, 7, xid=0x9101), timeout=1) == []
    [ipxe] = exchange(served, pxe_packet(opt.DISCOVER, 7, xid=0x9102, ipxe=True))
    assert ipxe.file == f"{served.base}/boot/ipxe".encode()


def test_the_boot_path_becomes_a_host_event(served):
    exchange(served, http_discover(0x9201))
    # the iPXE it loads asks too: the same boot, no second event
    exchange(served, pxe_packet(opt.DISCOVER, 7, xid=0x9202, ipxe=True,
                                mac=b"\x52\x54\x00\xab\xcd\x16"))
    deadline = time.monotonic() + 30
    while True:
        shown = run([EXE, "hosts", "show", "52:54:00:ab:cd:16", "--json",
                     "--data-dir", served.data_dir]).stdout  # fmt: skip
        boots = [e for e in json.loads(shown)["events"] if e["kind"] == "boot"]
        if boots or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [e["step"] for e in boots] == ["UEFI HTTP"], served.log.read_text()[-3000:]
    assert "HTTPClient:Arch:00016" in boots[0]["message"]


def test_loaders_are_served_with_tftp_and_dhcp_both_off(tmp_path: Path):
    """A site DHCP server may hand out the loader URL itself (serve --no-dhcp)."""
    with serve_process(tmp_path / "data", "--tftp-port", "0", "--no-dhcp") as (base, _proc):
        got = run(["curl", "-sS", "-f", "--max-time", "10", "-o", str(tmp_path / "l.efi"),
                   "-w", "%{content_type}", f"{base}/loaders/snponly.efi"])  # fmt: skip
        assert got.stdout == "application/efi"
        assert (tmp_path / "l.efi").read_bytes() == LOADER.read_bytes()
        assert not (tmp_path / "data" / "tftp").exists()  # nothing was copied anywhere
