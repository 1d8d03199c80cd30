"""Real PXE firmware against our ProxyDHCP and TFTP, beside a plain site DHCP server (dnsmasq).

Two QEMU machines in the lab namespace (:mod:`lab`): SeaBIOS with Debian's iPXE option ROM
(a BIOS client that already is iPXE: it must get the HTTP URL at once), and OVMF with the
firmware's own PXE client (x86-64 UEFI: it must get ``snponly.efi`` over our TFTP, whose iPXE
then asks again and gets the HTTP URL). Each must end with an HTTP request for ``/boot/ipxe``.

Sniffer sockets on ports 67 and 68 record the real datagrams; with ``XCP_CAPTURE_DHCP=DIR`` the
run stores them, which is how ``tests/pxe/data/dhcp`` was made.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dhcp_proxy import in_netns

from lab import dnsmasq, netns, qemu
from pxe.boot.plan import BootAction, BootPlan
from pxe.dhcp import options as opt
from pxe.dhcp.packet import DhcpPacket
from pxe.dhcp.proxy import ProxyDhcpService
from pxe.tftp.files import GeneratedFiles
from pxe.tftp.loaders import loader_for_arch, prepare_tftp_root
from pxe.tftp.server import TftpService

pytestmark = [pytest.mark.slow, pytest.mark.root]
BOOT_SECONDS = 240


class Sniffer:
    """Every datagram to one UDP port on the bridge, kept raw."""

    def __init__(self, port: int, interface: str) -> None:
        self.datagrams: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        self.sock.bind(("0.0.0.0", port))
        self.sock.settimeout(0.5)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.running = True
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                self.datagrams.append(self.sock.recv(4096))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


class BootScript(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        BootScript.requests.append((self.client_address[0], self.path))
        body = b"#!ipxe\necho xcp-provision test: boot script reached\nsleep 300\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict]:
    with netns.lab_network(f"10.{90 + os.getpid() % 8}.0.0/24") as net:
        site = dnsmasq.start_site_dhcp(net, tmp_path, max_seconds=BOOT_SECONDS + 60)
        root = prepare_tftp_root(tmp_path / "data")
        base_url = f"http://{net.server_ip}:8080"
        tftp = TftpService(root, GeneratedFiles(lambda _mac: BootPlan(BootAction.WAIT), base_url),
                           host=net.server_ip, port=69)
        proxy = ProxyDhcpService(net.server_ip, base_url, interface=net.bridge,
                                 loaders=loader_for_arch(root))
        BootScript.requests = []

        def start_all() -> tuple:
            sniffers = (Sniffer(67, net.bridge), Sniffer(68, net.bridge))
            tftp.start()
            proxy.start()
            web = http.server.ThreadingHTTPServer((net.server_ip, 8080), BootScript)
            threading.Thread(target=web.serve_forever, daemon=True).start()
            return sniffers, web

        sniffers, web = in_netns(net.namespace, start_all)
        vms = []
        try:
            yield {"net": net, "tmp": tmp_path, "tftp": tftp, "proxy": proxy, "vms": vms,
                   "sniffers": sniffers, "leases": tmp_path / "dnsmasq.leases"}
        finally:
            for vm in vms:
                vm.stop(grace=1)
            web.shutdown()
            web.server_close()
            proxy.stop()
            tftp.stop()
            for sniffer in sniffers:
                sniffer.close()
            site.stop()


def test_bios_ipxe_and_uefi_firmware_reach_the_boot_script(lab):
    net, tmp = lab["net"], lab["tmp"]
    specs = [
        qemu.VmSpec("bios", qemu.mac_for(1), "tapbios", tmp, uefi=False, memory_mib=256,
                    disk_gib=1),
        qemu.VmSpec("uefi", qemu.mac_for(2), "tapuefi", tmp, uefi=True, memory_mib=256,
                    disk_gib=1),
    ]
    for spec in specs:
        lab["vms"].append(qemu.power_on(spec, net, BOOT_SECONDS))
    deadline = time.monotonic() + BOOT_SECONDS
    reached: dict[str, str] = {}
    while time.monotonic() < deadline and len(reached) < len(specs):
        leases = dnsmasq.leases(lab["leases"])
        for client, path in BootScript.requests:
            for spec in specs:
                if leases.get(spec.mac) == client:
                    reached[spec.name] = path
        time.sleep(1)
    logs = {s.name: s.serial_log.read_text(errors="replace")[-1500:] for s in specs}
    assert reached == {"bios": "/boot/ipxe", "uefi": "/boot/ipxe"}, logs

    sniffed = [DhcpPacket.decode(d) for d in lab["sniffers"][0].datagrams]
    discovers = {p.mac: p for p in sniffed if p.message_type == opt.DISCOVER}
    assert opt.client_arch(discovers[specs[0].mac].options) == 0
    assert opt.is_ipxe(discovers[specs[0].mac].options)
    uefi_archs = {opt.client_arch(p.options) for p in sniffed if p.mac == specs[1].mac}
    assert 7 in uefi_archs
    assert lab["tftp"].counters.transfers >= 1  # snponly.efi for the UEFI firmware
    assert lab["proxy"].counters.answered >= 3

    capture = os.environ.get("XCP_CAPTURE_DHCP")
    if capture:
        store(Path(capture), lab["sniffers"], specs)


def store(directory: Path, sniffers: tuple[Sniffer, Sniffer], specs: list) -> None:
    """Keep the first datagram of each kind per machine and port, named for what it is."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {spec.mac: spec.name for spec in specs}
    kinds = {1: "discover", 2: "offer", 3: "request", 5: "ack", 8: "inform"}
    for port, sniffer in zip((67, 68), sniffers, strict=True):
        for data in sniffer.datagrams:
            packet = DhcpPacket.decode(data)
            source = "proxy" if packet.options.get(opt.VENDOR_CLASS) == b"PXEClient" else "site"
            who = names.get(packet.mac, "other")
            kind = kinds.get(packet.message_type or 0, "other")
            ipxe = "-ipxe" if opt.is_ipxe(packet.options) else ""
            name = f"{who}-{kind}{ipxe}" + (f"-from-{source}" if port == 68 else "") + ".bin"
            target = directory / name
            if not target.exists():
                target.write_bytes(data)
