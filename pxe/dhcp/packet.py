"""DHCP/BOOTP datagrams (RFC 2131, 2132, 3396): decode strictly, encode what clients expect.

Written here rather than taken from a library: dpkt's ``DHCP`` (the only maintained candidate;
scapy is a whole packet toolkit, dhcppython has been stale since 2021) is a bare header struct
that raises ``IndexError`` on a truncated option, ignores the magic cookie and option overload,
and cannot split long options. A ProxyDHCP server reads untrusted broadcasts from a whole rack,
so every malformed datagram must become one typed error, and the codec is small. It is tested
against packets captured from real clients and servers (``tests/pxe/data/dhcp``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pxe.dhcp import options as opt
from pxe.store.macs import format_mac

MAGIC = b"\x63\x82\x53\x63"
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
HEADER_SIZE = _HEADER.size  # 236
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
# RFC 1542: some BOOTP relays and old PXE ROMs drop replies shorter than a BOOTP packet.
MIN_PACKET = 300
ZERO = IPv4Address(0)


class MalformedPacketError(ValueError):
    """A datagram that is not a well-formed DHCP message; it names the first defect found."""

    def __init__(self, why: str) -> None:
        super().__init__(f"malformed DHCP packet: {why}")


@dataclass
class DhcpPacket:
    op: int
    xid: int
    chaddr: bytes  # the hardware address, hlen bytes long
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    sname: bytes = b""
    file: bytes = b""
    # Option code -> value; a code split over several instances (RFC 3396) arrives joined.
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> int | None:
        value = self.options.get(opt.MESSAGE_TYPE)
        return value[0] if value and len(value) == 1 else None

    @property
    def mac(self) -> str:
        return format_mac(self.chaddr)

    @classmethod
    def decode(cls, data: bytes) -> DhcpPacket:
        if len(data) < HEADER_SIZE + len(MAGIC):
            raise MalformedPacketError(f"{len(data)} bytes, shorter than a BOOTP header")
        (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
         sname, file) = _HEADER.unpack_from(data)
        if op not in (BOOTREQUEST, BOOTREPLY):
            raise MalformedPacketError(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
        if hlen > 16:
            raise MalformedPacketError(f"hardware address length {hlen} exceeds 16")
        if data[HEADER_SIZE:HEADER_SIZE + 4] != MAGIC:
            raise MalformedPacketError("no DHCP magic cookie")
        chunks: dict[int, list[bytes]] = {}
        _read_options(data[HEADER_SIZE + 4:], chunks, "options")
        overload = b"".join(chunks.get(opt.OVERLOAD, []))
        if overload:
            if overload[0] & 1:
                _read_options(file, chunks, "file field")
                file = b""
            if overload[0] & 2:
                _read_options(sname, chunks, "sname field")
                sname = b""
        return cls(
            op=op, htype=htype, hops=hops, xid=xid, secs=secs, flags=flags,
            ciaddr=IPv4Address(ciaddr), yiaddr=IPv4Address(yiaddr),
            siaddr=IPv4Address(siaddr), giaddr=IPv4Address(giaddr),
            chaddr=chaddr[:hlen], sname=sname.split(b"\0", 1)[0],
            file=file.split(b"\0", 1)[0],
            options={code: b"".join(parts) for code, parts in chunks.items()},
        )

    def encode(self) -> bytes:
        if len(self.sname) > 63 or len(self.file) > 127:
            raise ValueError("sname/file too long for their fixed fields (63/127 bytes)")
        header = _HEADER.pack(
            self.op, self.htype, len(self.chaddr), self.hops, self.xid, self.secs, self.flags,
            self.ciaddr.packed, self.yiaddr.packed, self.siaddr.packed, self.giaddr.packed,
            self.chaddr.ljust(16, b"\0"), self.sname.ljust(64, b"\0"),
            self.file.ljust(128, b"\0"),
        )
        body = bytearray(MAGIC)
        # The message type first: some PXE ROMs look for it there.
        ordered = sorted(self.options.items(), key=lambda item: item[0] != opt.MESSAGE_TYPE)
        for code, value in ordered:
            if not 0 < code < opt.END:
                raise ValueError(f"option code {code} is reserved")
            if not value:
                body += bytes([code, 0])
            for start in range(0, len(value), 255):
                piece = value[start:start + 255]
                body += bytes([code, len(piece)]) + piece
        body.append(opt.END)
        packet = header + bytes(body)
        return packet.ljust(MIN_PACKET, b"\0")


def _read_options(area: bytes, chunks: dict[int, list[bytes]], where: str) -> None:
    i = 0
    while i < len(area):
        code = area[i]
        if code == opt.END:
            return
        if code == opt.PAD:
            i += 1
            continue
        if i + 1 >= len(area):
            raise MalformedPacketError(f"option {code} in the {where} has no length byte")
        length = area[i + 1]
        if i + 2 + length > len(area):
            raise MalformedPacketError(
                f"option {code} in the {where} claims {length} bytes, "
                f"only {len(area) - i - 2} remain")
        chunks.setdefault(code, []).append(area[i + 2:i + 2 + length])
        i += 2 + length
    if where == "options":
        raise MalformedPacketError("options end without an END option")
