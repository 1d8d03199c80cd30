"""The DHCP codec and the ProxyDHCP decisions, on packets captured from real clients and servers."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxe.dhcp import options as opt
from pxe.dhcp.packet import (
    BOOTREQUEST,
    MIN_PACKET,
    DhcpPacket,
    MalformedPacketError,
)
from pxe.dhcp.proxy import ProxyDhcpService

DATA = Path(__file__).parent / "data" / "dhcp"
CAPTURES = sorted(DATA.glob("*.bin"))


def load(name: str) -> DhcpPacket:
    return DhcpPacket.decode((DATA / name).read_bytes())


def test_captures_are_present():
    assert len(CAPTURES) >= 8


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_captured_packets_survive_a_round_trip(path):
    packet = DhcpPacket.decode(path.read_bytes())
    encoded = packet.encode()
    assert len(encoded) >= MIN_PACKET
    assert DhcpPacket.decode(encoded) == packet


def test_ovmf_discover_fields():
    packet = load("uefi-discover.bin")
    assert packet.op == BOOTREQUEST
    assert packet.message_type == opt.DISCOVER
    assert packet.mac == "52:54:00:46:bb:02"
    assert packet.flags == 0x8000
    assert opt.is_pxe_client(packet.options)
    assert opt.client_arch(packet.options) == 7
    assert not opt.is_ipxe(packet.options)
    assert len(packet.options[opt.CLIENT_UUID]) == 17


def test_ipxe_discover_fields():
    packet = load("bios-discover-ipxe.bin")
    assert opt.client_arch(packet.options) == 0
    assert opt.is_ipxe(packet.options)
    assert packet.options[opt.VENDOR_CLASS] == b"PXEClient:Arch:00000:UNDI:002001"


def test_dnsmasq_offer_fields():
    packet = load("uefi-offer-from-site.bin")
    assert packet.message_type == opt.OFFER
    assert packet.yiaddr == IPv4Address("10.93.0.241")
    assert packet.options[opt.SERVER_ID] == IPv4Address("10.93.0.2").packed
    assert packet.options[opt.SUBNET_MASK] == IPv4Address("255.255.255.0").packed


@pytest.fixture
def proxy() -> ProxyDhcpService:
    return ProxyDhcpService("10.93.0.1", "http://10.93.0.1:8080")


@pytest.mark.parametrize(("name", "port_4011", "expected"), [
    ("uefi-discover.bin", False, b"snponly.efi"),
    ("uefi-request.bin", True, b"snponly.efi"),
    ("uefi-discover-ipxe.bin", False, b"http://10.93.0.1:8080/boot/ipxe"),
    ("bios-discover-ipxe.bin", False, b"http://10.93.0.1:8080/boot/ipxe"),
    ("bios-request-ipxe.bin", True, b"http://10.93.0.1:8080/boot/ipxe"),
])
def test_decisions_on_real_requests(proxy, name, port_4011, expected):
    reply = proxy.reply_for(load(name), on_pxe_port=port_4011)
    assert reply is not None
    assert reply.packet.options[opt.BOOTFILE] == expected
    assert reply.packet.yiaddr == IPv4Address(0)


@pytest.mark.parametrize("name", ["uefi-request.bin", "bios-request-ipxe.bin",
                                  "uefi-offer-from-site.bin", "uefi-ack-from-site.bin",
                                  "uefi-offer-from-proxy.bin"])
def test_silent_on_port_67_for_requests_and_replies(proxy, name):
    assert proxy.reply_for(load(name), on_pxe_port=False) is None


def test_our_offer_matches_the_stored_reference(proxy):
    reply = proxy.reply_for(load("uefi-discover.bin"), on_pxe_port=False)
    assert reply.packet == load("uefi-offer-from-proxy.bin")


def test_long_option_split_and_joined():
    long_url = ("http://boot.example.net/" + "x" * 400).encode()
    packet = DhcpPacket(op=2, xid=1, chaddr=b"\x02" * 6, options={opt.BOOTFILE: long_url})
    encoded = packet.encode()
    assert encoded.count(bytes([opt.BOOTFILE, 255])) == 1
    assert DhcpPacket.decode(encoded).options[opt.BOOTFILE] == long_url


def test_overloaded_file_field_is_read_as_options():
    packet = DhcpPacket(op=1, xid=7, chaddr=b"\x02" * 6,
                        options={opt.MESSAGE_TYPE: b"\x01", opt.OVERLOAD: b"\x01"})
    raw = bytearray(packet.encode())
    file_field = 44 + 64
    extra = bytes([opt.VENDOR_CLASS, 9]) + b"PXEClient" + bytes([opt.END])
    raw[file_field:file_field + len(extra)] = extra
    decoded = DhcpPacket.decode(bytes(raw))
    assert decoded.options[opt.VENDOR_CLASS] == b"PXEClient"
    assert decoded.file == b""


@pytest.mark.parametrize(("data", "why"), [
    (b"", "shorter than a BOOTP header"),
    (b"\x03" + bytes(239), "neither BOOTREQUEST"),
    (b"\x01\x01\x11" + bytes(237), "hardware address length 17"),
    (b"\x01\x01\x06" + bytes(237), "no DHCP magic cookie"),
])
def test_malformed_headers_named(data, why):
    with pytest.raises(MalformedPacketError, match=why):
        DhcpPacket.decode(data)


def test_truncated_captures_raise_only_malformed():
    for path in CAPTURES:
        data = path.read_bytes()
        complete = DhcpPacket.decode(data)
        for cut in range(len(data)):
            try:
                decoded = DhcpPacket.decode(data[:cut])
            except MalformedPacketError:
                assert cut < len(data)
                continue
            assert decoded == complete  # only cuts in the padding after END decode


@settings(max_examples=500, deadline=None)
@given(tail=st.binary(max_size=400), header=st.binary(min_size=240, max_size=240))
def test_random_bytes_never_escape_as_another_error(header, tail):
    data = bytes([1]) + header[1:236] + b"\x63\x82\x53\x63" + tail
    try:
        packet = DhcpPacket.decode(data)
    except MalformedPacketError:
        return
    assert packet.op == BOOTREQUEST
