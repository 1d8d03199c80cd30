"""A TFTP pump process: runs the data phase of the downloads ``serve`` hands it.

Why processes: a rack's loaders are a hundred downloads at once, each a round trip per block.
In one process every ACK that arrives waits for the interpreter, and the scheduler gives that
process one share of the CPU against the hundred clients' (tftpd-hpa forks a process per
download and gets one share each). Spread over processes, the blocks flow in parallel.

The request side stays in ``serve`` (:mod:`pxe.tftp.server`): it reads every request, decides
what to serve (paths inside the root only, generated files from the inventory), negotiates the
options and opens the file. A pump gets only what the data phase needs, over a Unix socket
from :mod:`pxe.tftp.pumps`: the download's connected UDP socket and the file's descriptor as
``SCM_RIGHTS``, and one JSON line (:class:`Handoff`). It answers each finished download with
one JSON line (:class:`Outcome`), which ``serve`` logs and counts. It exits when ``serve``
closes its end, even if ``serve`` was killed.

Started by :class:`pxe.tftp.pumps.Pumps` as ``python -m pxe.tftp.pump --fd N``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import socket
import time
import traceback
from collections.abc import Callable

from pxe.tftp.download import ClientError, Download

_RECV_SIZE = 65536
# How often timeouts are checked; a download's own timeout is seconds.
_TICK_S = 0.1
SERVER_ERROR = b"\x00\x05\x00\x00internal server error\x00"


@dataclasses.dataclass(frozen=True)
class Handoff:
    """What a pump needs besides the two descriptors: the negotiated download."""

    transfer: int
    blksize: int
    window: int
    oack: bytes | None
    timeout: float
    retries: int

    def encode(self) -> bytes:
        fields = dataclasses.asdict(self)
        fields["oack"] = self.oack.hex() if self.oack is not None else None
        return json.dumps(fields).encode()

    @classmethod
    def decode(cls, line: bytes) -> Handoff:
        fields = json.loads(line)
        oack = fields.pop("oack")
        return cls(oack=bytes.fromhex(oack) if oack is not None else None, **fields)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a download ended: ``failure`` is None for a complete one; ``crashed`` marks a bug."""

    transfer: int
    sent: int
    failure: str | None = None
    crashed: bool = False

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, line: bytes) -> Outcome:
        return cls(**json.loads(line))


@dataclasses.dataclass
class _Running:
    handoff: Handoff
    download: Download
    heard: float
    tries: int = 0


class Pump:
    """The loop of one pump process over its ``channel`` to ``serve``."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._poll = select.epoll()
        self._running: dict[int, _Running] = {}

    def run(self) -> None:
        """Serve until ``serve`` closes its side of the channel; then take what the clients
        have already sent (a last ACK makes a download complete), end the rest as stopped,
        report every one and return."""
        channel_fd = self._channel.fileno()
        self._poll.register(channel_fd, select.EPOLLIN)
        next_check = time.monotonic() + _TICK_S
        try:
            while self._serve_once(channel_fd, _TICK_S):
                now = time.monotonic()
                if now >= next_check:
                    self._check_timeouts(now)
                    next_check = now + _TICK_S
            self._poll.unregister(channel_fd)
            self._serve_once(channel_fd, 0)
            for fd in list(self._running):
                self._end(fd, "stopped")
        finally:
            for fd in list(self._running):
                self._close(fd)
            self._poll.close()

    def _serve_once(self, channel_fd: int, wait: float) -> bool:
        """One round of what is ready within ``wait`` seconds; false once the channel ended."""
        for fd, _ in self._poll.poll(wait):
            if fd == channel_fd:
                if not self._receive():
                    return False
            elif (running := self._running.get(fd)) is not None:
                self._advance(fd, running)
        return True

    def _receive(self) -> bool:
        """Take one handoff; false when ``serve`` is gone."""
        line, fds, _, _ = socket.recv_fds(self._channel, _RECV_SIZE, 2)
        if not line:
            for fd in fds:
                os.close(fd)
            return False
        handoff = Handoff.decode(line)
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        download = Download(sock, fds[1], handoff.blksize, handoff.window, handoff.oack)
        fd = sock.fileno()
        self._running[fd] = _Running(handoff, download, time.monotonic())
        self._poll.register(fd, select.EPOLLIN)
        self._step(fd, download.begin)
        return True

    def _advance(self, fd: int, running: _Running) -> None:
        try:
            packet = running.download.sock.recv(_RECV_SIZE)  # connected: the client's TID only
        except BlockingIOError:
            return
        except OSError as exc:  # ICMP port unreachable: the client went away
            self._end(fd, f"client gone ({exc.strerror})")
            return
        running.heard = time.monotonic()
        running.tries = 0
        if self._step(fd, lambda: running.download.take(packet)):
            self._end(fd, None)

    def _step(self, fd: int, action: Callable[[], bool | None]) -> bool:
        """Run one step of a download and return what it returns; whatever it raises ends that
        download alone (and returns false)."""
        try:
            return bool(action())
        except ClientError as exc:
            self._end(fd, str(exc))
        except OSError as exc:
            self._end(fd, f"client gone ({exc.strerror})")
        except Exception:
            with contextlib.suppress(OSError):  # tell the client at once, not after 5 retries
                self._running[fd].download.sock.send(SERVER_ERROR)
            self._end(fd, traceback.format_exc(), crashed=True)
        return False

    def _check_timeouts(self, now: float) -> None:
        for fd, running in list(self._running.items()):
            if now - running.heard < running.handoff.timeout:
                continue
            running.tries += 1
            if running.tries >= running.handoff.retries:
                self._end(fd, "timed out")
                continue
            running.heard = now
            self._step(fd, running.download.send_again)

    def _end(self, fd: int, failure: str | None, *, crashed: bool = False) -> None:
        running = self._running.get(fd)
        if running is None:
            return
        self._close(fd)
        outcome = Outcome(running.handoff.transfer, running.download.new_bytes, failure, crashed)
        with contextlib.suppress(OSError):  # serve is gone: nobody to tell
            self._channel.send(outcome.encode())

    def _close(self, fd: int) -> None:
        running = self._running.pop(fd)
        running.download.sock.close()  # closing also drops it from epoll
        os.close(running.download.fd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the channel to serve")
    args = parser.parse_args(argv)
    Pump(socket.socket(fileno=args.fd)).run()


if __name__ == "__main__":
    main()
