"""RFC 7440 windowed downloads: ``windowsize`` blocks in flight, one ACK per window.

In lock-step TFTP every block waits a full round trip for its ACK, so a loader crawls over any
link with latency (1 ms per block is 0.7 s per MiB at 1468-byte blocks). EDK2's TFTP client
(OVMF, most UEFI servers) and atftp ask for a window; this sends it.

Block numbers on the wire are 16 bits and roll over to 0; the sender keeps absolute numbers and
maps each ACK to the one absolute block it can mean, the window after the last acknowledged
block. An ACK inside the window moves the window to just after it (the client saw a gap and
asks for everything that follows); the same ACK twice means the window's first block was lost,
and is answered once; an ACK for anything older or never sent is ignored, which is what keeps
duplicates from multiplying the traffic (the Sorcerer's Apprentice of RFC 1350).
"""

from __future__ import annotations

import socket
from typing import BinaryIO

from tftpy.TftpShared import TftpException

# Enough to fill a 1 Gbit/s link at 1 ms of latency with 1468-byte blocks, and small enough
# that a window never overruns a client's default socket buffer.
MAX_WINDOW = 64
_WRAP = 1 << 16
_OP_DATA = b"\x00\x03"
_OP_ACK = 4
_OP_ERROR = 5


def accepted_window(requested: str) -> int:
    """The window this server grants for a client's ``windowsize`` option (RFC 7440: 1-65535).

    Raises ValueError for a value outside the RFC's range, which fails the negotiation.
    """
    size = int(requested)
    if not 1 <= size < _WRAP:
        raise ValueError(f"windowsize {requested} is outside 1-65535")
    return min(size, MAX_WINDOW)


class WindowedSender:
    """The data phase of one download after the OACK; the caller owns the socket and timing."""

    def __init__(self, sock: socket.socket, fileobj: BinaryIO, blksize: int, window: int) -> None:
        self.sock = sock
        self.fileobj = fileobj
        self.blksize = blksize
        self.window = window
        self.acked = -1  # the OACK is block 0, not acknowledged yet
        self.sent_upto = 0
        self.last: int | None = None  # the final block, once read
        self.new_bytes = 0  # payload sent for the first time (resends not counted)
        self._resent = False  # the window after ``acked`` was sent again for a duplicate ACK

    @property
    def started(self) -> bool:
        """Whether the client acknowledged the OACK (before, a timeout resends the OACK)."""
        return self.acked >= 0

    def take(self, packet: bytes) -> bool:
        """Handle one datagram from the client; true once the final block is acknowledged.

        Raises TftpException when the client sends an ERROR.
        """
        opcode = int.from_bytes(packet[:2], "big")
        if opcode == _OP_ERROR:
            message = packet[4:].split(b"\0", 1)[0].decode(errors="replace")
            raise TftpException(f"client error {int.from_bytes(packet[2:4], 'big')}: {message}")
        if opcode != _OP_ACK or len(packet) < 4:
            return False
        block = self.acked + (int.from_bytes(packet[2:4], "big") - self.acked) % _WRAP
        if block == self.acked and self.sent_upto > block and not self._resent:
            # The first block of the window was lost: the client says so at once (RFC 7440,
            # section 4); answering once, not per duplicate, keeps the traffic bounded.
            self._resent = True
            self.send_window()
            return False
        if block <= self.acked or block > self.sent_upto:
            return False
        self.acked = block
        self._resent = False
        if block == self.last:
            return True
        self.send_window()
        return False

    def send_window(self) -> None:
        """Send the window after the last acknowledged block (again, after a timeout)."""
        first = self.acked + 1
        self.fileobj.seek((first - 1) * self.blksize)
        for block in range(first, first + self.window):
            data = self.fileobj.read(self.blksize)
            self.sock.send(_OP_DATA + (block % _WRAP).to_bytes(2, "big") + data)
            if block > self.sent_upto:
                self.sent_upto = block
                self.new_bytes += len(data)
            if len(data) < self.blksize:
                self.last = block
                return
