"""The TFTP service: tftpy's request handling behind a read-only, supervised front, and the
downloads in pump processes.

tftpy 0.8.7 gets the protocol right (RRQ, OACK, blksize, tsize, retransmission) but its server is
unsafe and slow as shipped: it follows symlinks out of the root, accepts uploads, crashes for good
when a dynamic file is a ``BytesIO`` (#155), stops only after its next select timeout, and its
``listen()`` loop rebuilds the socket list, scans every session to find a packet's owner and
re-checks every timeout on each packet, which makes it quadratic in the number of concurrent
clients.

So this module keeps tftpy's packet codec, contexts and option negotiation, and replaces the rest:

* the request start (:class:`_ReadOnlyStart`): write requests are refused, every path is
  resolved with ``realpath`` and refused outside the root, and so is a file found outside it
  once open (a directory swapped for a link in between); generated files come from the
  ``generated`` callable, in a small worker pool so a slow inventory lookup never stalls the
  other requests;
* the request loop (:class:`TftpService`): one epoll over the listening socket, a wake-up pipe
  so ``stop()`` is immediate, every request's exception contained, and the loop itself
  restarted by a supervisor if it ever dies;
* the downloads: each on a connected socket of its own (the kernel drops packets from a foreign
  transfer id, which tftpy would process), run by the pump processes (:mod:`pxe.tftp.pump`),
  which get the socket and the file's descriptor. This process decides what is served and keeps
  the counters and the log; the pumps only move blocks, in parallel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketOACK, TftpPacketRRQ, TftpPacketWRQ
from tftpy.TftpShared import TftpErrors, TftpException
from tftpy.TftpStates import TftpServerState, TftpState

from pxe.tftp.download import accepted_window
from pxe.tftp.pump import SERVER_ERROR, Handoff, Outcome
from pxe.tftp.pumps import NoPumpError, Pumps
from pxe.udp_buffers import deepen_receive_buffer

log = logging.getLogger(__name__)

Generated = Callable[[str, str], bytes | None]

# RFC 2348's ceiling: a DATA packet must still fit in one UDP datagram.
MAX_BLKSIZE = 65464
_RECV_SIZE = 65536
# How often the loop looks for pumps to replace.
_TICK_S = 0.25


class TftpRefusedError(TftpException):
    """A request this server will not serve (upload, path outside the root, missing file)."""

    def __init__(self, code: int, client: str, filename: str, why: str) -> None:
        self.code = code
        self.client = client
        self.filename = filename
        self.why = why
        super().__init__(f"refused {filename!r} to {client}: {why}")


@dataclasses.dataclass
class TftpCounters:
    """Totals the metrics endpoint reads; only the service thread writes them."""

    transfers: int = 0  # completed downloads
    bytes: int = 0  # payload bytes of completed downloads
    failed: int = 0  # started but not completed (timeout, client error)
    refused: int = 0  # uploads, escapes, missing files
    malformed: int = 0  # datagrams on the listening port that are no request
    crashed: int = 0  # unexpected exceptions contained (a bug, logged with its traceback)


class _ReadOnlyStart(TftpState):
    """First state of every transfer: only reads, only inside the root."""

    def handle(self, pkt: object, raddress: str, rport: int) -> None:
        self.context.tidport = rport
        if isinstance(pkt, TftpPacketRRQ):
            _ReadRequest(self.context).handle(pkt, raddress, rport)
            return
        self.sendError(TftpErrors.AccessViolation)
        kind = "write request" if isinstance(pkt, TftpPacketWRQ) else "not a read request"
        raise TftpRefusedError(
            TftpErrors.AccessViolation, raddress, getattr(pkt, "filename", "?"), kind
        )


class _ReadRequest(TftpServerState):
    def returnSupportedOptions(self, options: dict[str, str]) -> dict[str, object]:  # noqa: N802
        accepted = super().returnSupportedOptions(options)
        if "blksize" in accepted:
            accepted["blksize"] = min(int(accepted["blksize"]), MAX_BLKSIZE)
        if "windowsize" in options:
            accepted["windowsize"] = accepted_window(options["windowsize"])
        return accepted

    def handle(self, pkt: TftpPacketRRQ, raddress: str, rport: int) -> None:
        """Negotiate and open; the download itself runs in a pump (``ctx.oack`` is its first
        packet when options were asked for)."""
        try:
            send_oack = self.serverInitial(pkt, raddress, rport)
        except TftpRefusedError:
            raise
        except TftpException as exc:  # tftpy's own '..' check already sent the error
            raise TftpRefusedError(
                TftpErrors.AccessViolation, raddress, pkt.filename, str(exc)
            ) from exc
        except ValueError as exc:  # a non-numeric blksize
            self.sendError(TftpErrors.FailedNegotiation)
            raise TftpRefusedError(
                TftpErrors.FailedNegotiation, raddress, pkt.filename, f"bad option: {exc}"
            ) from exc
        ctx = self.context
        try:
            ctx.fileobj = ctx.opener(pkt.filename, self.full_path, raddress)
        except TftpRefusedError as exc:
            self.sendError(exc.code)
            raise
        if send_oack:
            if "tsize" in ctx.options:
                ctx.options["tsize"] = str(os.fstat(ctx.fileobj.fileno()).st_size)
            oack = TftpPacketOACK()
            oack.options = ctx.options
            ctx.oack = oack.encode().buffer


class _Transfer(TftpContextServer):
    """tftpy's server context for a request, started by :class:`_ReadOnlyStart`."""

    def __init__(self, client: tuple[str, int], timeout: float, retries: int, root: str,
                 opener: Callable[[str, str, str], BinaryIO], *, number: int) -> None:
        super().__init__(client[0], client[1], timeout, root, retries=retries, flock=False)
        # Connected: the kernel drops foreign TIDs and skips a route lookup per packet.
        self.sock.connect(client)
        self.state = _ReadOnlyStart(self)
        self.number = number
        self.opener = opener
        self.peer = client
        self.started = time.monotonic()
        self.oack: bytes | None = None

    def handoff(self) -> Handoff:
        return Handoff(self.number, int(self.options.get("blksize", 512)),
                       int(self.options.get("windowsize", 1)), self.oack, self.timeout,
                       self.retries)  # fmt: skip


class TftpService:
    """A read-only TFTP server on one UDP port: requests in a background thread of this process,
    downloads in ``pumps`` child processes (:mod:`pxe.tftp.pump`).

    ``generated(path, client_ip)`` is asked first for every read request (``path`` relative to
    the root, without a leading slash) and returns the bytes of a computed file, or ``None`` to
    look the path up on disk under ``root``.
    """

    def __init__(self, root: Path, generated: Generated, host: str = "0.0.0.0",  # noqa: S104
                 port: int = 69, *, timeout: float = 5.0, retries: int = 5,
                 openers: int = 8, pumps: int = 2) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"TFTP root {self.root} is not a directory")
        self.generated = generated
        self.host = host
        self._requested_port = port
        self.timeout = timeout
        self.retries = retries
        self.counters = TftpCounters()
        self.pumps = Pumps(pumps)
        self._factory = TftpPacketFactory()
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # A worker may finish after stop(): it must not write to a closed (or reused) fd.
        self._wake_lock = threading.Lock()
        self._wake_open = True
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll: select.epoll | None = None
        self._numbers = itertools.count(1)
        # Every transfer by client, from its request until its pump says how it ended.
        self._by_client: dict[tuple[str, int], _Transfer] = {}
        self._in_pumps: dict[int, _Transfer] = {}
        self._openers = ThreadPoolExecutor(max_workers=openers, thread_name_prefix="tftp-open")
        self._started: queue.SimpleQueue[tuple[_Transfer, Exception | None]] = queue.SimpleQueue()
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # per-packet chatter otherwise

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("TftpService.port is known only after start()")
        return self._sock.getsockname()[1]

    def start(self) -> None:
        """Bind and start the pumps now (so a busy port fails here, in the caller); serve in a
        thread."""
        self._bind()
        self.pumps.start()
        self._thread = threading.Thread(target=self._supervise, name="tftp", daemon=True)
        self._thread.start()
        log.info("TFTP serving %s on %s:%d", self.root, self.host, self.port)

    def stop(self) -> None:
        """Stop at once: the loop wakes up on the pipe and exits, the pumps end their downloads
        (those the client finished count as sent)."""
        self._stopping.set()
        self._wake(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._openers.shutdown(wait=False, cancel_futures=True)
        for outcome in self.pumps.stop():
            self._account(outcome)
        for transfer in list(self._by_client.values()):
            self._finish(transfer, 0, "stopped")
        if self._sock is not None:
            self._sock.close()
        with self._wake_lock:
            self._wake_open = False
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _bind(self) -> None:
        port = self._requested_port if self._sock is None else self.port
        # No SO_REUSEADDR: for UDP it would let a second server share port 69 silently.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deepen_receive_buffer(sock)
        sock.bind((self.host, port))
        sock.setblocking(False)
        self._sock = sock

    def _supervise(self) -> None:
        """Run the loop; if it dies of a bug, log it, rebuild its state and run it again.

        The loop and the pumps run at the process's own priority, like every other server a
        site runs: a faster transfer is the protocol's to win (windows, large blocks), not the
        scheduler's. Downloads already in pumps go on through a restart.
        """
        while not self._stopping.is_set():
            try:
                self._loop()
            except Exception:
                self.counters.crashed += 1
                log.exception("TFTP loop died; restarting it")
                for transfer in list(self._by_client.values()):
                    if transfer.number not in self._in_pumps:
                        self._finish(transfer, 0, "aborted")
                if self._sock is None or self._sock.fileno() < 0:
                    self._bind()
                time.sleep(0.05)

    def _loop(self) -> None:
        # epoll directly: selectors' per-event key objects cost more than the ACK handling.
        poll = select.epoll()
        self._poll = poll
        listen_fd, wake_fd = self._sock.fileno(), self._wake_r
        poll.register(listen_fd, select.EPOLLIN)
        poll.register(wake_fd, select.EPOLLIN)
        channels = self.pumps.channels()
        for fd in channels:
            poll.register(fd, select.EPOLLIN)
        next_tick = time.monotonic() + _TICK_S
        try:
            while not self._stopping.is_set():
                for fd, _ in poll.poll(_TICK_S):
                    if fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        os.read(wake_fd, 4096)
                        self._register_started()
                    elif fd in channels:
                        self._outcomes(channels, fd)
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(channels)
                    next_tick = now + _TICK_S
        finally:
            poll.close()

    def _tick(self, channels: dict[int, int]) -> None:
        """Replace the pumps that died, once their time has come."""
        for fd, number in self.pumps.start_due().items():
            self._poll.register(fd, select.EPOLLIN)
            channels[fd] = number

    def _accept(self) -> None:
        try:
            buffer, client = self._sock.recvfrom(_RECV_SIZE)
        except BlockingIOError:
            return
        if client in self._by_client:
            return  # a retransmitted request of a running transfer
        try:
            pkt = self._factory.parse(buffer)
            if not isinstance(pkt, TftpPacketRRQ | TftpPacketWRQ):
                raise TftpException(f"opcode {type(pkt).__name__} on the request port")
        except Exception as exc:
            self.counters.malformed += 1
            log.debug("dropped a malformed datagram from %s:%d: %s", *client, exc)
            return
        transfer = _Transfer(client, self.timeout, self.retries, self.root, self._open,
                             number=next(self._numbers))  # fmt: skip
        transfer.file_to_transfer = pkt.filename
        self._by_client[client] = transfer
        self._openers.submit(self._start_transfer, transfer, pkt)

    def _start_transfer(self, transfer: _Transfer, pkt: TftpPacketRRQ) -> None:
        """In a worker: resolve, generate and open the file, negotiate the options.

        ``generated`` may ask a database; doing it here keeps one slow answer from stalling
        every other request (tftpy calls its dyn_file_func inside its only loop).
        """
        error: Exception | None = None
        try:
            transfer.state.handle(pkt, *transfer.peer)
        except Exception as exc:
            error = exc
        self._started.put((transfer, error))
        self._wake(b"s")

    def _wake(self, why: bytes) -> None:
        with self._wake_lock:
            if self._wake_open:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                    os.write(self._wake_w, why)

    def _register_started(self) -> None:
        """Back in the loop: hand the opened transfers to the pumps, account for the rest."""
        while True:
            try:
                transfer, error = self._started.get_nowait()
            except queue.Empty:
                return
            if self._by_client.get(transfer.peer) is not transfer:
                transfer.end()  # dropped meanwhile (stop, loop restart)
                continue
            if error is None:
                try:
                    self.pumps.hand_off(transfer.handoff(), transfer.sock,
                                        transfer.fileobj.fileno())  # fmt: skip
                except NoPumpError as exc:
                    error = exc
                else:
                    self._in_pumps[transfer.number] = transfer
                    transfer.end()  # the pump has its own copies of the socket and the file
                    continue
            name, (host, port) = transfer.file_to_transfer, transfer.peer
            if isinstance(error, TftpRefusedError):
                del self._by_client[transfer.peer]
                self.counters.refused += 1
                log.info("tftp refused %s to %s:%d: %s", name, host, port, error.why)
                transfer.end()
                continue
            with contextlib.suppress(OSError):  # at once, not after the client's five retries
                transfer.sock.send(SERVER_ERROR)
            if isinstance(error, NoPumpError):
                self._finish(transfer, 0, str(error))
                continue
            log.error("tftp request %r from %s:%d crashed", name, host, port, exc_info=error)
            self._finish(transfer, 0, "crashed", crashed=True)

    def _outcomes(self, channels: dict[int, int], fd: int) -> None:
        """A pump's channel is readable: downloads it finished, or its end."""
        number = channels[fd]
        outcomes = self.pumps.outcomes(number)
        if outcomes is None:
            self._poll.unregister(fd)
            del channels[fd]
            for lost in self.pumps.lost(number):
                transfer = self._in_pumps.pop(lost, None)
                if transfer is not None:
                    self._finish(transfer, 0, "its TFTP pump exited")
            return
        for outcome in outcomes:
            self._account(outcome)

    def _account(self, outcome: Outcome) -> None:
        transfer = self._in_pumps.pop(outcome.transfer, None)
        if transfer is None:
            return
        if outcome.crashed:
            log.error("tftp transfer %s crashed in a pump:\n%s",
                      transfer.file_to_transfer, outcome.failure)  # fmt: skip
        self._finish(transfer, outcome.sent, "crashed" if outcome.crashed else outcome.failure,
                     crashed=outcome.crashed)  # fmt: skip

    def _finish(self, transfer: _Transfer, sent: int, failure: str | None, *,
                crashed: bool = False) -> None:
        """Account for a transfer that ended, closing what this process still holds of it; log
        its one line."""
        self._in_pumps.pop(transfer.number, None)
        if self._by_client.get(transfer.peer) is transfer:
            del self._by_client[transfer.peer]
        transfer.end()
        seconds = time.monotonic() - transfer.started
        client = "%s:%d" % transfer.peer  # noqa: UP031 (one address, two parts)
        if crashed:
            self.counters.crashed += 1
        if failure is None:
            self.counters.transfers += 1
            self.counters.bytes += sent
            window = transfer.options.get("windowsize", 1)
            window = f", window {window}" if window != 1 else ""
            log.info("tftp sent %s to %s: %d bytes in %.3f s%s",
                     transfer.file_to_transfer, client, sent, seconds, window)
        else:
            self.counters.failed += 1
            log.warning("tftp failed %s to %s after %d bytes in %.3f s: %s",
                        transfer.file_to_transfer, client, sent, seconds, failure)

    def _open(self, filename: str, full_path: str, client: str) -> BinaryIO:
        """The file behind a request: generated first, else a regular file inside the root.

        Generated bytes go into an anonymous memory file, so that a pump gets every download as
        a descriptor. A file on disk is checked twice: its path resolved before opening, and the
        file as the kernel opened it, which catches a directory swapped for a link in between.
        """
        relative = filename.lstrip("/")
        data = self.generated(relative, client)
        if data is not None:
            memory = os.fdopen(os.memfd_create("tftp-generated"), "w+b")
            memory.write(data)
            memory.flush()
            return memory
        real = os.path.realpath(full_path)
        if os.path.commonpath([real, self.root]) != self.root:
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   "resolves outside the TFTP root")
        if not os.path.isfile(real):
            raise TftpRefusedError(TftpErrors.FileNotFound, client, filename, "no such file")
        try:
            file = open(real, "rb")  # noqa: SIM115 (the transfer closes it)
        except OSError as exc:
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   exc.strerror or "unreadable") from exc
        opened = os.readlink(f"/proc/self/fd/{file.fileno()}")
        if os.path.commonpath([opened, self.root]) != self.root:
            file.close()
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   "resolves outside the TFTP root")
        return file
