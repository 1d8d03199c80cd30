"""The TFTP service: tftpy's protocol states behind a read-only, supervised, faster front.

tftpy 0.8.7 gets the protocol right (RRQ, OACK, blksize, tsize, retransmission) but its server is
unsafe and slow as shipped: it follows symlinks out of the root, accepts uploads, crashes for good
when a dynamic file is a ``BytesIO`` (#155), stops only after its next select timeout, and its
``listen()`` loop rebuilds the socket list, scans every session to find a packet's owner and
re-checks every timeout on each packet, which makes it quadratic in the number of concurrent
clients.

So this module keeps tftpy's packet codec, contexts and states, and replaces only the two things
that cannot be wrapped from outside:

* the request start (:class:`_ReadOnlyStart`): write requests are refused, every path is
  resolved with ``realpath`` and refused outside the root, and so is a file found outside it
  once open (a directory swapped for a link in between), generated files come from the
  ``generated`` callable, in a small worker pool so a slow inventory lookup never stalls the
  transfers already running; small files on disk are served from memory while unchanged
  (:mod:`pxe.tftp.filecache`);
* the event loop (:class:`TftpService`): one epoll registration per transfer, each transfer on
  a connected socket (the kernel drops packets from a foreign transfer id, which tftpy would
  process), timeouts checked on a tick, a wake-up pipe so ``stop()`` is immediate, every
  transfer's exception contained, and the loop itself restarted by a supervisor if it ever
  dies. The steady-state ACK -> DATA step is done inline (profiling showed tftpy's
  per-packet objects, parsing and logging to be most of the Python time); everything else
  (OACK, duplicates, errors, resends) still goes through tftpy's states. tftpy's #155 (a
  ``BytesIO`` kills ``listen()``) is a defect of that loop, which this module does not run, so
  files in memory are served as ``BytesIO``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
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
from tftpy.TftpPacketTypes import TftpPacketDAT, TftpPacketRRQ, TftpPacketWRQ
from tftpy.TftpShared import (
    TftpErrors,
    TftpException,
    TftpTimeout,
    TftpTimeoutExpectACK,
)
from tftpy.TftpStates import TftpServerState, TftpState, TftpStateExpectACK

from pxe.tftp.filecache import FileCache, OutsideRootError
from pxe.tftp.window import WindowedSender, accepted_window
from pxe.udp_buffers import deepen_receive_buffer

log = logging.getLogger(__name__)

Generated = Callable[[str, str], bytes | None]

# RFC 2348's ceiling: a DATA packet must still fit in one UDP datagram.
MAX_BLKSIZE = 65464
_RECV_SIZE = 65536
_ACK = b"\x00\x04"
_DAT = b"\x00\x03"


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

    def handle(self, pkt: object, raddress: str, rport: int) -> TftpState:
        self.context.tidport = rport
        if isinstance(pkt, TftpPacketRRQ):
            return _ReadRequest(self.context).handle(pkt, raddress, rport)
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

    def handle(self, pkt: TftpPacketRRQ, raddress: str, rport: int) -> TftpState:
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
        if send_oack and "tsize" in ctx.options:
            ctx.options["tsize"] = str(ctx.fileobj.seek(0, os.SEEK_END))
            ctx.fileobj.seek(0)
        if send_oack:
            self.sendOACK()
        else:
            ctx.next_block = 1
            ctx.pending_complete = self.sendDAT()
        return TftpStateExpectACK(ctx)


class _Transfer(TftpContextServer):
    """tftpy's server context, started by :class:`_ReadOnlyStart` and fed by our loop."""

    def __init__(self, client: tuple[str, int], timeout: float, retries: int, root: str,
                 opener: Callable[[str, str, str], BinaryIO]) -> None:
        self._last_pkt: object = None
        self._last_dat: bytes | None = None
        self._expected_ack: bytes | None = None
        super().__init__(client[0], client[1], timeout, root, retries=retries, flock=False)
        self.sock.setblocking(False)
        # Connected: the kernel drops foreign TIDs and skips a route lookup per packet.
        self.sock.connect(client)
        self.state = _ReadOnlyStart(self)
        self.opener = opener
        self.peer = client
        self.started = time.monotonic()
        self.blksize: int | None = None  # known once options are negotiated
        # The data phase when the client negotiated a window of more than one block.
        self.windowed: WindowedSender | None = None

    @property
    def last_pkt(self) -> object:
        """tftpy resends ``last_pkt``; the fast path keeps only bytes and builds it on demand."""
        if self._last_dat is not None:
            dat = TftpPacketDAT()
            dat.blocknumber = int.from_bytes(self._last_dat[2:4], "big")
            dat.data = self._last_dat[4:]
            dat.buffer = self._last_dat
            self._last_pkt, self._last_dat = dat, None
        return self._last_pkt

    @last_pkt.setter
    def last_pkt(self, packet: object) -> None:
        self._last_pkt, self._last_dat = packet, None

    def arm_fast_path(self) -> None:
        """After tftpy moved the transfer: the one ACK :meth:`ack_and_send_next` may take, or,
        right after an OACK granting a window, the windowed sender that takes over."""
        window = int(self.options.get("windowsize", 1))
        if window > 1 and type(self.state) is TftpStateExpectACK and self.next_block == 0:
            blksize = int(self.options.get("blksize", 512))
            self.windowed = WindowedSender(self.sock, self.fileobj, blksize, window)
            self._expected_ack = None
        elif type(self.state) is TftpStateExpectACK:
            self._expected_ack = _ACK + self.next_block.to_bytes(2, "big")
        else:
            self._expected_ack = None

    def ack_and_send_next(self, buffer: bytes) -> bool:
        """The steady-state step of a download (the expected ACK in, the next DATA out) without
        tftpy's per-packet objects, parsing and logging; false leaves the packet to tftpy."""
        if buffer != self._expected_ack:
            return False
        self.retry_count = 0
        if self.pending_complete:
            self.state = None
            return True
        self.next_block += 1  # tftpy's setter wraps 65535 to 0
        blksize = self.blksize
        if blksize is None:
            blksize = self.blksize = int(self.options.get("blksize", 512))
        data = self.fileobj.read(blksize)
        block = self.next_block.to_bytes(2, "big")
        dat = _DAT + block + data
        self.sock.send(dat)
        self._last_dat = dat
        self._expected_ack = _ACK + block
        self.metrics.bytes += len(data)
        self.pending_complete = len(data) < blksize
        return True


class TftpService:
    """A read-only TFTP server on one UDP port, run by background threads.

    ``generated(path, client_ip)`` is asked first for every read request (``path`` relative to
    the root, without a leading slash) and returns the bytes of a computed file, or ``None`` to
    look the path up on disk under ``root``.
    """

    def __init__(self, root: Path, generated: Generated, host: str = "0.0.0.0",  # noqa: S104
                 port: int = 69, *, timeout: float = 5.0, retries: int = 5,
                 openers: int = 8, files: FileCache | None = None) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"TFTP root {self.root} is not a directory")
        self.generated = generated
        self.host = host
        self._requested_port = port
        self.timeout = timeout
        self.retries = retries
        self.counters = TftpCounters()
        self.files = files if files is not None else FileCache()
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
        self._transfers: dict[int, _Transfer] = {}
        # Every transfer by client, including those a worker is still opening.
        self._by_client: dict[tuple[str, int], _Transfer] = {}
        self._openers = ThreadPoolExecutor(max_workers=openers, thread_name_prefix="tftp-open")
        self._started: queue.SimpleQueue[tuple[_Transfer, Exception | None]] = queue.SimpleQueue()
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # per-packet chatter otherwise

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("TftpService.port is known only after start()")
        return self._sock.getsockname()[1]

    def start(self) -> None:
        """Bind now (so a busy port fails here, in the caller) and serve in a thread."""
        self._bind()
        self._thread = threading.Thread(target=self._supervise, name="tftp", daemon=True)
        self._thread.start()
        log.info("TFTP serving %s on %s:%d", self.root, self.host, self.port)

    def stop(self) -> None:
        """Stop at once: the loop wakes up on the pipe, drops running transfers and exits."""
        self._stopping.set()
        self._wake(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._openers.shutdown(wait=False, cancel_futures=True)
        for transfer in list(self._by_client.values()):
            self._finish(transfer, "stopped")
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

        The loop runs at the process's own priority, like every other server a site runs: a
        faster transfer is the protocol's to win (windows, large blocks), not the scheduler's.
        """
        while not self._stopping.is_set():
            try:
                self._loop()
            except Exception:
                self.counters.crashed += 1
                log.exception("TFTP loop died; restarting it")
                for transfer in list(self._by_client.values()):
                    self._finish(transfer, "aborted")
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
        transfers = self._transfers
        for fd in transfers:
            poll.register(fd, select.EPOLLIN)
        tick = min(1.0, self.timeout / 4)
        next_check = time.monotonic() + tick
        try:
            while not self._stopping.is_set():
                for fd, _ in poll.poll(tick):
                    transfer = transfers.get(fd)
                    if transfer is not None:
                        self._advance(transfer)
                    elif fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        os.read(wake_fd, 4096)
                        self._register_started()
                now = time.monotonic()
                if now >= next_check:
                    self._check_timeouts()
                    next_check = now + tick
        finally:
            poll.close()

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
        transfer = _Transfer(client, self.timeout, self.retries, self.root, self._open)
        transfer.file_to_transfer = pkt.filename
        transfer.last_update = time.time()
        transfer.metrics.start_time = transfer.last_update
        self._by_client[client] = transfer
        self._openers.submit(self._start_transfer, transfer, pkt)

    def _start_transfer(self, transfer: _Transfer, pkt: TftpPacketRRQ) -> None:
        """In a worker: resolve, generate and open the file, send the first packet.

        ``generated`` may ask a database; doing it here keeps one slow answer from stalling
        every running transfer (tftpy calls its dyn_file_func inside its only loop).
        """
        error: Exception | None = None
        try:
            transfer.state = transfer.state.handle(pkt, *transfer.peer)
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
        """Back in the loop: watch the transfers the workers started, account for the rest."""
        while True:
            try:
                transfer, error = self._started.get_nowait()
            except queue.Empty:
                return
            if self._by_client.get(transfer.peer) is not transfer:
                transfer.end()  # dropped meanwhile (stop, loop restart)
                continue
            if error is None:
                transfer.arm_fast_path()
                fd = transfer.sock.fileno()
                self._transfers[fd] = transfer
                self._poll.register(fd, select.EPOLLIN)
                continue
            del self._by_client[transfer.peer]
            name, (host, port) = transfer.file_to_transfer, transfer.peer
            if isinstance(error, TftpRefusedError):
                self.counters.refused += 1
                log.info("tftp refused %s to %s:%d: %s", name, host, port, error.why)
            else:
                self.counters.crashed += 1
                log.error("tftp request %r from %s:%d crashed", name, host, port,
                          exc_info=error)
                self._send_server_error(transfer)
            transfer.end()

    def _advance(self, transfer: _Transfer) -> None:
        try:
            buffer = transfer.sock.recv(_RECV_SIZE)  # connected: only the client's TID arrives
        except BlockingIOError:
            return
        except OSError as exc:  # ICMP port unreachable: the client went away
            self._finish(transfer, f"client gone ({exc.strerror})")
            return
        transfer.last_update = time.time()
        transfer.timeout_expectACK = False
        try:
            if transfer.windowed is not None:
                if transfer.windowed.take(buffer):
                    transfer.state = None
                transfer.retry_count = 0
            elif not transfer.ack_and_send_next(buffer):
                packet = self._factory.parse(buffer)
                transfer.state = transfer.state.handle(packet, *transfer.peer)
                transfer.retry_count = 0
                transfer.arm_fast_path()
        except TftpTimeoutExpectACK:
            transfer.timeout_expectACK = True
        except TftpException as exc:
            self._finish(transfer, str(exc))
            return
        except OSError as exc:
            self._finish(transfer, f"client gone ({exc.strerror})")
            return
        except Exception:
            self.counters.crashed += 1
            log.exception("tftp transfer %s crashed", transfer.file_to_transfer)
            self._send_server_error(transfer)
            self._finish(transfer, "crashed")
            return
        if transfer.state is None:
            self._finish(transfer, None)

    @staticmethod
    def _send_server_error(transfer: _Transfer) -> None:
        """Tell the client at once, so it does not retransmit into the same bug five times."""
        with contextlib.suppress(OSError):
            transfer.sock.send(b"\x00\x05\x00\x00internal server error\x00")

    def _check_timeouts(self) -> None:
        now = time.time()
        for transfer in list(self._transfers.values()):
            try:
                transfer.checkTimeout(now)
            except TftpTimeout:
                transfer.retry_count += 1
                if transfer.retry_count >= transfer.retries:
                    self._finish(transfer, "timed out")
                    continue
                transfer.timeout_expectACK = False
                transfer.last_update = now
                try:
                    if transfer.windowed is not None and transfer.windowed.started:
                        transfer.windowed.send_window()
                    else:
                        transfer.state.resendLast()
                except Exception as exc:
                    self._finish(transfer, f"resend failed: {exc}")

    def _finish(self, transfer: _Transfer, failure: str | None) -> None:
        """Close a transfer (closing its socket also drops it from epoll); log its one line."""
        self._transfers.pop(transfer.sock.fileno(), None)
        self._by_client.pop(transfer.peer, None)
        transfer.end()
        seconds = time.monotonic() - transfer.started
        sent = transfer.metrics.bytes
        if transfer.windowed is not None:
            sent += transfer.windowed.new_bytes
        client = "%s:%d" % transfer.peer  # noqa: UP031 (one address, two parts)
        if failure is None:
            self.counters.transfers += 1
            self.counters.bytes += sent
            window = f", window {transfer.windowed.window}" if transfer.windowed else ""
            log.info("tftp sent %s to %s: %d bytes in %.3f s%s",
                     transfer.file_to_transfer, client, sent, seconds, window)
        else:
            self.counters.failed += 1
            log.warning("tftp failed %s to %s after %d bytes in %.3f s: %s",
                        transfer.file_to_transfer, client, sent, seconds, failure)

    def _open(self, filename: str, full_path: str, client: str) -> BinaryIO:
        """The file behind a request: generated first, else a regular file inside the root."""
        relative = filename.lstrip("/")
        data = self.generated(relative, client)
        if data is not None:
            return io.BytesIO(data)
        real = os.path.realpath(full_path)
        if os.path.commonpath([real, self.root]) != self.root:
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   "resolves outside the TFTP root")
        if not os.path.isfile(real):
            raise TftpRefusedError(TftpErrors.FileNotFound, client, filename, "no such file")
        try:
            return self.files.open(real, self.root)
        except OutsideRootError:
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   "resolves outside the TFTP root") from None
        except OSError as exc:
            raise TftpRefusedError(TftpErrors.AccessViolation, client, filename,
                                   exc.strerror or "unreadable") from exc
