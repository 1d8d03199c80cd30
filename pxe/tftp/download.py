"""The data phase of one TFTP download: blocks out, ACKs in, one window at a time.

A window of one block is RFC 1350's lock step. A larger window is RFC 7440's: in lock step
every block waits a full round trip for its ACK, so a loader crawls over any link with latency
(1 ms per block is 0.7 s per MiB at 1468-byte blocks). EDK2's TFTP client (OVMF, most UEFI
servers) and atftp ask for a window; the request side grants it (:func:`accepted_window`).

Block numbers on the wire are 16 bits and roll over to 0; the sender keeps absolute numbers and
maps each ACK to the one absolute block it can mean, the window after the last acknowledged
block. An ACK inside the window moves the window to just after it (the client saw a gap and
asks for everything that follows). In a window of several blocks the same ACK twice means the
window's first block was lost, and is answered once; in lock step a duplicate ACK is ignored
and the timeout resends. An ACK for anything older or never sent is ignored. That is what
keeps duplicates from multiplying the traffic (the Sorcerer's Apprentice of RFC 1350).

The bytes come from a file descriptor by offset (``pread``), so a download needs no file
position of its own and can move to another process with its descriptor.
"""

from __future__ import annotations

import os
import socket

# Enough to fill a 1 Gbit/s link at 1 ms of latency with 1468-byte blocks, and small enough
# that a window never overruns a client's default socket buffer.
MAX_WINDOW = 64
_WRAP = 1 << 16
_OP_DATA = b"\x00\x03"
_OP_ACK = 4
_OP_ERROR = 5


class ClientError(Exception):
    """The client ended the download with a TFTP ERROR packet."""


def accepted_window(requested: str) -> int:
    """The window this server grants for a client's ``windowsize`` option (RFC 7440: 1-65535).

    Raises ValueError for a value outside the RFC's range, which fails the negotiation.
    """
    size = int(requested)
    if not 1 <= size < _WRAP:
        raise ValueError(f"windowsize {requested} is outside 1-65535")
    return min(size, MAX_WINDOW)


class Download:
    """One download after its request was accepted; the caller owns the timing.

    ``oack`` is the option acknowledgement to send first, when the client asked for options:
    the client's ACK of block 0 then starts the data. Without it the data starts at once.
    """

    def __init__(self, sock: socket.socket, fd: int, blksize: int, window: int,
                 oack: bytes | None) -> None:
        self.sock = sock
        self.fd = fd
        self.blksize = blksize
        self.window = window
        self.oack = oack
        self.acked = -1 if oack is not None else 0  # an OACK is block 0, not acknowledged yet
        self.sent_upto = 0
        self.last: int | None = None  # the final block, once read
        self.new_bytes = 0  # payload sent for the first time (resends not counted)
        self._resent = False  # the window after ``acked`` was sent again for a duplicate ACK

    def begin(self) -> None:
        """Send the first packet: the OACK, or the first window of data."""
        if self.oack is not None:
            self.sock.send(self.oack)
        else:
            self.send_window()

    def send_again(self) -> None:
        """After a timeout: the OACK again if the client has not acknowledged it, else the
        window after the last acknowledged block."""
        if self.acked < 0:
            self.sock.send(self.oack)
        else:
            self.send_window()

    def take(self, packet: bytes) -> bool:
        """Handle one datagram from the client; true once the final block is acknowledged.

        Raises ClientError when the client sends an ERROR.
        """
        opcode = int.from_bytes(packet[:2], "big")
        if opcode == _OP_ERROR:
            message = packet[4:].split(b"\0", 1)[0].decode(errors="replace")
            raise ClientError(f"client error {int.from_bytes(packet[2:4], 'big')}: {message}")
        if opcode != _OP_ACK or len(packet) < 4:
            return False
        block = self.acked + (int.from_bytes(packet[2:4], "big") - self.acked) % _WRAP
        if block == self.acked:
            if self.window > 1 and self.sent_upto > block and not self._resent:
                # The first block of the window was lost: the client says so at once (RFC
                # 7440, section 4); answering once, not per duplicate, bounds the traffic.
                self._resent = True
                self.send_window()
            return False
        if block < self.acked or block > self.sent_upto:
            return False
        self.acked = block
        self._resent = False
        if block == self.last:
            return True
        self.send_window()
        return False

    def send_window(self) -> None:
        """Send the window after the last acknowledged block."""
        first = self.acked + 1
        blksize = self.blksize
        for block in range(first, first + self.window):
            data = os.pread(self.fd, blksize, (block - 1) * blksize)
            self.sock.send(_OP_DATA + (block % _WRAP).to_bytes(2, "big") + data)
            if block > self.sent_upto:
                self.sent_upto = block
                self.new_bytes += len(data)
            if len(data) < blksize:
                self.last = block
                return
