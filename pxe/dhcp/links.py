"""Which interface a DHCP datagram came in on, and answering out of that same interface.

A broadcast answer (a client without an address yet) follows the routing table unless told
otherwise: on a server whose default route is on another network it leaves by the wrong NIC, and
with no default route at all ``sendto`` fails with "Network is unreachable". ``IP_PKTINFO``
(Linux ``ip(7)``) fixes both from one wildcard socket: on receive it names the interface index
and the datagram's destination; given on send, its interface index picks the outgoing link and
its address the source address.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

# Linux values (<linux/in.h>, <linux/sockios.h>); Python 3.11's socket module lacks IP_PKTINFO.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
SIOCGIFADDR = 0x8915
_PKTINFO = struct.Struct("i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_CMSG_SPACE = socket.CMSG_SPACE(_PKTINFO.size)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")


class InterfaceError(ValueError):
    """A configured DHCP interface that this machine does not have."""


@dataclass(frozen=True)
class Arrival:
    """Where one datagram came in: the interface and the address it was sent to."""

    ifindex: int
    destination: IPv4Address  # 255.255.255.255 for a broadcast


def enable_pktinfo(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


def receive(sock: socket.socket, size: int = 4096) -> tuple[bytes, tuple[str, int], Arrival]:
    data, ancillary, _flags, source = sock.recvmsg(size, _CMSG_SPACE)
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _PKTINFO.size:
            ifindex, _spec_dst, destination = _PKTINFO.unpack_from(value)
            return data, source, Arrival(ifindex, IPv4Address(destination))
    return data, source, Arrival(0, LIMITED_BROADCAST)


def send(sock: socket.socket, data: bytes, destination: tuple[str, int], *, ifindex: int,
         source: IPv4Address) -> None:
    """Send from ``source``; out of interface ``ifindex`` (0: wherever the routes say)."""
    info = _PKTINFO.pack(ifindex, source.packed, bytes(4))
    sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, destination)


def interface_address(name: str) -> IPv4Address | None:
    """The interface's primary IPv4 address, ``None`` when it has none (or is gone)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            reply = fcntl.ioctl(probe, SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENXIO):
                return None
            raise
    return IPv4Address(reply[20:24])


def interface_name(ifindex: int) -> str | None:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return None


def check_interfaces(names: tuple[str, ...]) -> None:
    """Every name is an interface of this machine (network namespace), or one clear error."""
    present = {name for _index, name in socket.if_nameindex()}
    missing = [name for name in names if name not in present]
    if missing:
        raise InterfaceError(
            f"dhcp_interfaces names {', '.join(missing)}, which this machine does not have "
            f"(it has {', '.join(sorted(present))}); fix dhcp_interfaces or leave it empty "
            "to serve every interface with an IPv4 address"
        )
