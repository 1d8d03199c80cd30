"""ProxyDHCP over a real link: two network namespaces joined by a veth pair.

The service runs in this process but inside the server namespace (its sockets are created by a
thread that entered it), the client is a UDP socket on port 68 inside the client namespace that
broadcasts crafted DISCOVERs and unicasts REQUESTs to port 4011, as PXE firmware does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from support.netns import Link, in_netns, ipv4_link, veth_link

from pxe.dhcp import options as opt
from pxe.dhcp.packet import BOOTREQUEST, FLAG_BROADCAST, DhcpPacket
from pxe.dhcp.pool import DhcpRange
from pxe.dhcp.proxy import ProxyDhcpService

SERVER_IP = "10.99.0.1"
CLIENT_IP = "10.99.0.2"
BASE_URL = f"http://{SERVER_IP}:8080"

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    with veth_link(f"ed{os.getpid() % 100000}", host_if=f"ed{os.getpid() % 100000}c") as pair:
        yield ipv4_link(pair, f"{SERVER_IP}/24", f"{CLIENT_IP}/24")


@pytest.fixture
def proxy(link: Link, request: pytest.FixtureRequest) -> Iterator[ProxyDhcpService]:
    kwargs = {"loaders": {0: "undionly.kpxe", 7: "snponly.efi", 9: "snponly.efi",
                          11: "grub/arm64-efi/core.efi"}, **getattr(request, "param", {})}
    service = ProxyDhcpService(SERVER_IP, BASE_URL, interface=link.server_if, **kwargs)
    in_netns(link.server_ns, service.start)
    yield service
    service.stop()


class Client:
    """A PXE client's socket on port 68 in the client namespace."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def exchange(self, packet: DhcpPacket, to: tuple[str, int],
                 timeout: float = 0.8) -> list[DhcpPacket]:
        """Send one datagram; return every reply for its xid until ``timeout`` passes quietly."""

        def go() -> list[DhcpPacket]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                self.link.host_if.encode())
                sock.bind(("0.0.0.0", 68))
                sock.settimeout(timeout)
                sock.sendto(packet.encode(), to)
                replies = []
                while True:
                    try:
                        data, _ = sock.recvfrom(4096)
                    except TimeoutError:
                        return replies
                    reply = DhcpPacket.decode(data)
                    if reply.xid == packet.xid:
                        replies.append(reply)

        return in_netns(self.link.host_ns, go)


@pytest.fixture
def client(link: Link) -> Client:
    return Client(link)


def pxe_packet(kind: int, arch: int | None, *, xid: int, ipxe: bool = False,
               vendor: bytes | None = None, mac: bytes = b"\x52\x54\x00\x12\x34\x56",
               ciaddr: str = "0.0.0.0") -> DhcpPacket:
    options = {opt.MESSAGE_TYPE: bytes([kind]),
               opt.PARAMETER_LIST: bytes([1, 3, 6, 43, 60, 66, 67])}
    if vendor is None and arch is not None:
        vendor = b"PXEClient:Arch:%05d:UNDI:003016" % arch
    if vendor is not None:
        options[opt.VENDOR_CLASS] = vendor
    if arch is not None:
        options[opt.CLIENT_ARCH] = arch.to_bytes(2, "big")
        options[opt.CLIENT_NDI] = b"\x01\x03\x10"
        options[opt.CLIENT_UUID] = b"\x00" + bytes(range(16))
    if ipxe:
        options[opt.USER_CLASS] = b"iPXE"
    return DhcpPacket(op=BOOTREQUEST, xid=xid, chaddr=mac, flags=FLAG_BROADCAST,
                      ciaddr=IPv4Address(ciaddr), options=options)


BROADCAST = ("255.255.255.255", 67)


@pytest.mark.parametrize(("arch", "ipxe", "expected"), [
    (0, False, "undionly.kpxe"),
    (7, False, "snponly.efi"),
    (9, False, "snponly.efi"),
    (11, False, "grub/arm64-efi/core.efi"),
    (0, True, f"{BASE_URL}/boot/ipxe"),
    (7, True, f"{BASE_URL}/boot/ipxe"),
])
def test_discover_gets_a_proxy_offer_per_architecture(proxy, client, arch, ipxe, expected):
    discover = pxe_packet(opt.DISCOVER, arch, xid=0x1000 + arch, ipxe=ipxe)
    replies = client.exchange(discover, BROADCAST)
    assert len(replies) == 1
    offer = replies[0]
    assert offer.message_type == opt.OFFER
    assert offer.yiaddr == IPv4Address(0)  # ProxyDHCP never offers an address
    assert offer.siaddr == IPv4Address(SERVER_IP)
    assert offer.chaddr == discover.chaddr
    assert offer.file.decode() == expected
    assert offer.options[opt.BOOTFILE].decode() == expected
    assert offer.options[opt.VENDOR_CLASS] == b"PXEClient"
    assert offer.options[opt.SERVER_ID] == IPv4Address(SERVER_IP).packed
    assert offer.options[opt.CLIENT_UUID] == discover.options[opt.CLIENT_UUID]
    assert offer.options[opt.VENDOR_SPECIFIC] == b"\x06\x01\x08\xff"


@pytest.mark.parametrize(("arch", "expected"), [(0, "undionly.kpxe"), (7, "snponly.efi"),
                                                (11, "grub/arm64-efi/core.efi")])
def test_request_on_port_4011_gets_an_ack(proxy, client, arch, expected):
    request = pxe_packet(opt.REQUEST, arch, xid=0x2000 + arch, ciaddr=CLIENT_IP)
    replies = client.exchange(request, (SERVER_IP, proxy.ports[1]))
    assert [r.message_type for r in replies] == [opt.ACK]
    assert replies[0].file.decode() == expected
    assert replies[0].yiaddr == IPv4Address(0)
    assert replies[0].ciaddr == IPv4Address(CLIENT_IP)


def test_option_60_alone_gives_the_architecture(proxy, client):
    discover = pxe_packet(opt.DISCOVER, None, xid=0x3001,
                          vendor=b"PXEClient:Arch:00007:UNDI:003016")
    assert [r.file for r in client.exchange(discover, BROADCAST)] == [b"snponly.efi"]


@pytest.mark.parametrize("packet", [
    pxe_packet(opt.DISCOVER, None, xid=0x4001),  # no vendor class at all: an ordinary client
    pxe_packet(opt.DISCOVER, 0, xid=0x4002, vendor=b"MSFT 5.0"),
    pxe_packet(opt.DISCOVER, 0, xid=0x4003, vendor=b"udhcp 1.36.1"),
    pxe_packet(opt.REQUEST, 0, xid=0x4004),  # a PXE REQUEST on 67 is for the real DHCP server
    pxe_packet(opt.DISCOVER, 6, xid=0x4005),  # IA32 UEFI: no loader for it
], ids=["plain", "windows", "udhcpc", "request-on-67", "unknown-arch"])
def test_silent_for_everything_else(proxy, client, packet):
    assert client.exchange(packet, BROADCAST, timeout=0.5) == []
    assert proxy.counters.answered == 0
    assert proxy.counters.ignored == 1


def test_non_pxe_request_on_4011_is_ignored(proxy, client):
    request = pxe_packet(opt.REQUEST, None, xid=0x5001, ciaddr=CLIENT_IP)
    assert client.exchange(request, (SERVER_IP, proxy.ports[1]), timeout=0.5) == []


def test_malformed_datagrams_are_dropped_and_service_keeps_answering(proxy, client, link):
    def barrage() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            valid = pxe_packet(opt.DISCOVER, 0, xid=1).encode()
            for i in range(2000):
                junk = os.urandom(i % 400) if i % 2 else valid[: 240 + i % 60] + b"\x35"
                sock.sendto(junk, (SERVER_IP, 67))

    in_netns(link.host_ns, barrage)
    # Like PXE firmware, retransmit while the server still works through the backlog the
    # barrage left in its socket buffer (slow on a loaded machine).
    replies = []
    for _ in range(5):
        replies = client.exchange(pxe_packet(opt.DISCOVER, 0, xid=0x6001), BROADCAST, timeout=2)
        if replies:
            break
    assert [r.file for r in replies] == [b"undionly.kpxe"]
    assert proxy.counters.malformed >= 100  # the rest overflowed the socket buffer


def http_discover(xid: int, *, arch: int = 16, vendor: bytes | None = None) -> DhcpPacket:
    """A DHCPDISCOVER as the UEFI specification's HTTP Boot section has an HTTP Boot client
    send it: vendor class ``HTTPClient:Arch:xxxxx:UNDI:yyyzzz``, option 93 the HTTP Boot
    architecture (16: x86-64 UEFI HTTP), option 94 the UNDI version, option 97 the UUID,
    asking for the boot file (67) and the vendor class (60) among the usual options."""
    return DhcpPacket(
        op=BOOTREQUEST, xid=xid, chaddr=b"\x52\x54\x00\xab\xcd\x16", flags=FLAG_BROADCAST,
        options={
            opt.MESSAGE_TYPE: bytes([opt.DISCOVER]),
            opt.PARAMETER_LIST: bytes([1, 3, 6, 15, 28, 43, 60, 66, 67, 97, 128]),
            opt.VENDOR_CLASS: vendor or b"HTTPClient:Arch:%05d:UNDI:003001" % arch,
            opt.CLIENT_ARCH: arch.to_bytes(2, "big"),
            opt.CLIENT_NDI: b"\x01\x03\x01",
            opt.CLIENT_UUID: b"\x00" + bytes(range(16, 32)),
        },
    )


LOADER_URL = f"{BASE_URL}/loaders/snponly.efi"


def test_http_boot_discover_gets_the_loader_url(proxy, client):
    discover = http_discover(0x8001)
    [offer] = client.exchange(discover, BROADCAST)
    assert offer.op == 2  # BOOTREPLY
    assert (offer.htype, offer.hops, offer.xid) == (1, 0, discover.xid)
    assert offer.chaddr == discover.chaddr
    assert offer.flags == FLAG_BROADCAST
    assert offer.ciaddr == offer.yiaddr == offer.giaddr == IPv4Address(0)  # a proxy offer
    assert offer.siaddr == IPv4Address(SERVER_IP)
    assert offer.sname == b""
    assert offer.file == LOADER_URL.encode()
    assert offer.options == {
        opt.MESSAGE_TYPE: bytes([opt.OFFER]),
        opt.SERVER_ID: IPv4Address(SERVER_IP).packed,
        opt.VENDOR_CLASS: b"HTTPClient",
        opt.BOOTFILE: LOADER_URL.encode(),
    }


@pytest.mark.parametrize(("vendor", "arch", "expected_class", "expected_file"), [
    (b"HTTPClient:Arch:00007:UNDI:003001", 7, b"HTTPClient", LOADER_URL),
    (b"PXEClient:Arch:00007:UNDI:003016", 16, b"PXEClient", "snponly.efi"),
    (b"HTTPClient", 9, b"HTTPClient", LOADER_URL),
], ids=["http-class-pxe-arch", "pxe-class-http-arch", "bare-http-class"])
def test_the_vendor_class_decides_between_http_and_pxe(proxy, client, vendor, arch,
                                                       expected_class, expected_file):
    proxy.loaders[16] = "snponly.efi"  # as serve's loader_for_arch has it
    [offer] = client.exchange(http_discover(0x8100 + arch, arch=arch, vendor=vendor), BROADCAST)
    assert offer.options[opt.VENDOR_CLASS] == expected_class
    assert offer.options[opt.BOOTFILE].decode() == expected_file
    assert (opt.VENDOR_SPECIFIC in offer.options) == (expected_class == b"PXEClient")


def test_http_boot_for_an_architecture_without_loader_is_silent(proxy, client):
    assert client.exchange(http_discover(0x8201, arch=19), BROADCAST, timeout=0.5) == []
    assert proxy.counters.ignored == 1


@pytest.mark.parametrize("proxy", [{"loaders": {}}], indirect=True)
def test_without_tftp_loaders_pxe_firmware_is_silent_but_http_and_ipxe_are_answered(proxy,
                                                                                    client):
    assert client.exchange(pxe_packet(opt.DISCOVER, 7, xid=0x8301), BROADCAST, timeout=0.5) == []
    [http] = client.exchange(http_discover(0x8302), BROADCAST)
    assert http.file == LOADER_URL.encode()
    [ipxe] = client.exchange(pxe_packet(opt.DISCOVER, 7, xid=0x8303, ipxe=True), BROADCAST)
    assert ipxe.file == f"{BASE_URL}/boot/ipxe".encode()


LAB = DhcpRange(IPv4Address("10.99.0.100"), IPv4Address("10.99.0.101"),
                IPv4Address("255.255.255.0"), router=IPv4Address("10.99.0.1"),
                dns=(IPv4Address("10.99.0.1"),))


@pytest.mark.parametrize("proxy", [{"full_dhcp": LAB}], indirect=True)
def test_full_dhcp_mode_leases_from_the_range(proxy, client):
    discover = pxe_packet(opt.DISCOVER, 7, xid=0x7001)
    [offer] = client.exchange(discover, BROADCAST)
    assert offer.message_type == opt.OFFER
    assert offer.yiaddr == IPv4Address("10.99.0.100")
    assert offer.file == b"snponly.efi"
    assert offer.options[opt.SUBNET_MASK] == IPv4Address("255.255.255.0").packed
    assert offer.options[opt.ROUTER] == IPv4Address("10.99.0.1").packed
    request = pxe_packet(opt.REQUEST, 7, xid=0x7002)
    request.options[opt.REQUESTED_IP] = offer.yiaddr.packed
    request.options[opt.SERVER_ID] = IPv4Address(SERVER_IP).packed
    [ack] = client.exchange(request, BROADCAST)
    assert (ack.message_type, ack.yiaddr) == (opt.ACK, IPv4Address("10.99.0.100"))
    # A plain client gets an address too, without boot information; the third finds none.
    plain = pxe_packet(opt.DISCOVER, None, xid=0x7003, mac=b"\x02\x00\x00\x00\x00\x01")
    [offer2] = client.exchange(plain, BROADCAST)
    assert offer2.yiaddr == IPv4Address("10.99.0.101")
    assert opt.BOOTFILE not in offer2.options
    assert opt.VENDOR_CLASS not in offer2.options
    full = pxe_packet(opt.DISCOVER, None, xid=0x7004, mac=b"\x02\x00\x00\x00\x00\x02")
    assert client.exchange(full, BROADCAST, timeout=0.5) == []
    # Asking for an address leased to someone else is refused.
    steal = pxe_packet(opt.REQUEST, None, xid=0x7005, mac=b"\x02\x00\x00\x00\x00\x02")
    steal.options[opt.REQUESTED_IP] = IPv4Address("10.99.0.100").packed
    [nak] = client.exchange(steal, BROADCAST)
    assert nak.message_type == opt.NAK
