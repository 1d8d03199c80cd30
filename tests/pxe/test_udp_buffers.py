"""The UDP services hold a rack's burst: their sockets' receive buffers, as the kernel reports
them (``ss``), are deep enough for a thousand requests arriving while their one thread is busy.

Measured before: 1,000 simulated hosts booting at once (bench/boot_storm_bench.py) overflowed
the TFTP socket's default buffer, 1,440 to 2,038 read requests dropped per storm, each costing
its host a one-second retransmission."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.netns import Link, in_netns, ipv4_link, veth_link

from common.runner import run
from pxe.dhcp.proxy import ProxyDhcpService
from pxe.tftp.files import GeneratedFiles
from pxe.tftp.loaders import prepare_tftp_root
from pxe.tftp.server import TftpService
from pxe.udp_buffers import BURST_BYTES, deepen_receive_buffer

pytestmark = pytest.mark.root


def receive_buffers(port: int, namespace: str | None = None) -> list[int]:
    """The receive buffer (``rb``) of every UDP socket bound to ``port``, as ``ss`` shows it."""
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    shown = run([*prefix, "ss", "-uanm", f"sport = :{port}"]).stdout
    return [int(size) for size in re.findall(r"\brb(\d+)\b", shown)]


def test_a_socket_gets_the_depth_asked_for_past_the_system_cap() -> None:
    cap = int(Path("/proc/sys/net/core/rmem_max").read_text())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert deepen_receive_buffer(sock, 4 * cap) >= 4 * cap


def test_the_tftp_socket_holds_a_burst(tmp_path: Path) -> None:
    root = prepare_tftp_root(tmp_path)
    service = TftpService(root, GeneratedFiles(lambda *_: None, "http://127.0.0.1:1"),
                          host="127.0.0.1", port=0)  # fmt: skip
    service.start()
    try:
        assert receive_buffers(service.port) and all(
            size >= BURST_BYTES for size in receive_buffers(service.port)
        )
    finally:
        service.stop()


@pytest.fixture
def link() -> Iterator[Link]:
    tag = f"ub{os.getpid() % 100000}"
    with veth_link(tag, host_if=f"{tag}c") as pair:
        yield ipv4_link(pair, "10.99.0.1/24", "10.99.0.2/24")


def test_the_proxy_dhcp_sockets_hold_a_burst(link: Link) -> None:
    service = ProxyDhcpService("10.99.0.1", "http://10.99.0.1:8080", interface=link.server_if,
                               loaders={0: "undionly.kpxe"}, ports=(6767, 4011))  # fmt: skip
    in_netns(link.server_ns, service.start)
    try:
        for port in (6767, 4011):
            sizes = receive_buffers(port, link.server_ns)
            assert sizes and all(size >= BURST_BYTES for size in sizes), (port, sizes)
    finally:
        service.stop()
