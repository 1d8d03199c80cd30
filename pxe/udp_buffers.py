"""Receive buffers deep enough for a rack's burst of UDP requests.

A rack powering on sends a thousand DHCP DISCOVERs and TFTP read requests within a second or
two. The kernel's default receive buffer (about 208 KiB, a hundred or so datagrams) overflows
while the one thread reading the socket is busy, and each datagram dropped costs its host a
firmware retransmission: a second for a TFTP read request, four for a DHCP DISCOVER. Servers
that fork per request (tftpd-hpa) drain their socket fast enough; a Python loop needs depth.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)

BURST_BYTES = 4 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's number; unnamed in Python 3.11


def deepen_receive_buffer(sock: socket.socket, size: int = BURST_BYTES) -> int:
    """Give ``sock`` a receive buffer of ``size`` bytes, past ``net.core.rmem_max`` when the
    process may (CAP_NET_ADMIN: ``serve`` runs as root to bind ports 67 and 69); returns the
    size the kernel granted (it counts twice what it was asked for, for its bookkeeping)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)  # capped at rmem_max
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < size:
        log.info("UDP receive buffer of %d bytes (asked for %d; net.core.rmem_max caps it "
                 "without CAP_NET_ADMIN)", granted, size)  # fmt: skip
    return granted
