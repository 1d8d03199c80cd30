"""The pump processes of a TFTP service, as its request loop sees them.

Each pump (:mod:`pxe.tftp.pump`) is a child process with one ``SOCK_SEQPACKET`` channel: a
handoff goes down as one message with its two descriptors, an outcome comes back as one
message, and a pump that dies shows as the end of its channel. A new download goes to the pump
with the fewest running. To stop, the service closes its side of each channel; the pump ends
what it runs, reports it and exits. A pump that died is replaced, less and less often while it
keeps dying young (:mod:`common.restarts`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import subprocess
import sys
import time

from common.restarts import Restarts
from common.runner import start
from pxe.tftp.pump import Handoff, Outcome

log = logging.getLogger(__name__)

_MAX_MESSAGE = 65536


class NoPumpError(RuntimeError):
    """No pump could take a download (all dead, or their channels full)."""


@dataclasses.dataclass
class _Slot:
    number: int
    channel: socket.socket | None = None
    process: subprocess.Popen[bytes] | None = None
    running: set[int] = dataclasses.field(default_factory=set)  # transfer numbers
    restarts: Restarts = dataclasses.field(default_factory=Restarts)


class Pumps:
    """``count`` pump processes; only the request loop's thread calls these methods."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"a TFTP service needs at least one pump, not {count}")
        self._slots = [_Slot(n) for n in range(count)]

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]

    def channels(self) -> dict[int, int]:
        """Each live pump's channel descriptor, mapped to the pump's number."""
        return {s.channel.fileno(): s.number for s in self._slots if s.channel is not None}

    def start(self) -> None:
        """Start every pump now; raises if one cannot start."""
        for slot in self._slots:
            self._spawn(slot)

    def start_due(self) -> dict[int, int]:
        """Start every missing pump whose time has come; as :meth:`channels`, those started."""
        now = time.monotonic()
        started = {}
        for slot in self._slots:
            if slot.channel is not None or not slot.restarts.due(now):
                continue
            try:
                self._spawn(slot)
            except Exception:
                delay = slot.restarts.could_not_start(now)
                log.exception("TFTP pump %d could not start; trying again in %.0f s",
                              slot.number, delay)  # fmt: skip
                continue
            started[slot.channel.fileno()] = slot.number
        return started

    def hand_off(self, handoff: Handoff, sock: socket.socket, data_fd: int) -> None:
        """Give one download to the least busy pump that takes it; NoPumpError if none does.

        The caller keeps (and closes) its own copies of both descriptors."""
        live = sorted((s for s in self._slots if s.channel is not None),
                      key=lambda s: len(s.running))  # fmt: skip
        for slot in live:
            try:
                socket.send_fds(slot.channel, [handoff.encode()], [sock.fileno(), data_fd])
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                continue
            slot.running.add(handoff.transfer)
            return
        raise NoPumpError("no TFTP pump is running" if not live else "every TFTP pump is full")

    def outcomes(self, number: int) -> list[Outcome] | None:
        """The outcomes waiting on pump ``number``'s channel; None when the pump is gone, whose
        running downloads are then lost (:meth:`lost` names them)."""
        slot = self._slots[number]
        outcomes = []
        while True:
            try:
                message = slot.channel.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return outcomes
            except ConnectionResetError:
                message = b""
            if not message:
                return None
            outcome = Outcome.decode(message)
            slot.running.discard(outcome.transfer)
            outcomes.append(outcome)

    def lost(self, number: int) -> set[int]:
        """Forget pump ``number`` (its channel ended) and schedule its replacement; the
        transfers it was running."""
        slot = self._slots[number]
        lost, slot.running = slot.running, set()
        slot.channel.close()
        slot.channel = None
        process, slot.process = slot.process, None
        try:
            status = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        now = time.monotonic()
        lived, delay = slot.restarts.died(now)
        log.error("TFTP pump %d (pid %d) exited with status %d after %.0f s, losing %d "
                  "downloads; starting another in %.0f s",
                  number, process.pid, status, lived, len(lost), delay)  # fmt: skip
        return lost

    def stop(self, timeout: float = 5.0) -> list[Outcome]:
        """Ask every pump to finish and return how their downloads ended: a pump ends each one
        (complete if its last ACK has arrived), says so, and exits. Kill the late."""
        deadline = time.monotonic() + timeout
        live = [s for s in self._slots if s.channel is not None]
        for slot in live:
            with contextlib.suppress(OSError):
                slot.channel.shutdown(socket.SHUT_WR)  # the pump reads its end
        outcomes = []
        for slot in live:
            slot.channel.settimeout(max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(OSError):  # a timeout included: the pump is killed below
                while message := slot.channel.recv(_MAX_MESSAGE):
                    outcomes.append(Outcome.decode(message))
            slot.channel.close()
            slot.channel = None
            slot.running.clear()
        for slot in self._slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("TFTP pump pid %d did not exit; killing it", slot.process.pid)
                slot.process.kill()
                slot.process.wait()
            slot.process = None
        return outcomes

    def _spawn(self, slot: _Slot) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            fd = theirs.fileno()
            slot.process = start([sys.executable, "-m", "pxe.tftp.pump", "--fd", str(fd)],
                                 pass_fds=(fd,))  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        slot.channel = ours
        slot.restarts.began(time.monotonic())
        log.debug("TFTP pump %d started (pid %d)", slot.number, slot.process.pid)
