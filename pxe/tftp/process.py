"""The TFTP service in a process of its own, for servers that also answer HTTP.

TFTP is a packet pump: one short Python step per 512-byte block, each after a syscall that
releases the GIL. In the process that also runs the web app, every such step waits for the GIL
behind Flask and SQLAlchemy work; measured here, 100 concurrent loader downloads took a median
0.29 s alone and 0.82 s while the same process answered 150 ``/boot/ipxe`` requests. A child
process gives TFTP its own interpreter (and core), and a TFTP bug can no longer take the web
server down with it.

:class:`TftpProcess` has :class:`pxe.tftp.server.TftpService`'s interface. The child runs that
very service; only ``generated`` stays in the parent (it needs the inventory), called through a
pipe per per-host-file request. Log records and counters come back through the same pipe. If
the child dies, the parent starts a new one on the same port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from pxe.tftp.server import Generated, TftpCounters, TftpService

log = logging.getLogger("pxe.tftp.server")

_START_SECONDS = 30
_GENERATE_SECONDS = 30
_COUNTERS_EVERY = 0.25


class TftpProcessError(RuntimeError):
    """The TFTP child process could not start (its reason, such as a busy port, included)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the TFTP service process did not start: {why}")


class TftpProcess:
    """A :class:`TftpService` in a child process; same constructor, ``start``, ``stop``,
    ``port`` and ``counters``."""

    def __init__(self, root: Path, generated: Generated, host: str = "0.0.0.0",  # noqa: S104
                 port: int = 69, **options: object) -> None:
        self.root = Path(root)
        self.generated = generated
        self.host = host
        self._port = port
        self.options = options
        self.counters = TftpCounters()
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._conn: Connection | None = None
        self._child: multiprocessing.process.BaseProcess | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._callers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tftp-generated")
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self) -> None:
        self._spawn()
        self._reader = threading.Thread(target=self._read_child, name="tftp-parent",
                                        daemon=True)
        self._reader.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._send(("stop",))
        if self._child is not None:
            self._child.join(5)
            if self._child.is_alive():
                self._child.kill()
                self._child.join(5)
        if self._reader is not None:
            self._reader.join(5)
        self._callers.shutdown(wait=False, cancel_futures=True)
        if self._conn is not None:
            self._conn.close()

    def _spawn(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_child_main, name="xcp-provision-tftp", daemon=True,
            args=(child, str(self.root), self.host, self._port, self.options))
        process.start()
        child.close()
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                process.kill()
                raise TftpProcessError(f"no answer within {_START_SECONDS} s")
            try:
                message = parent.recv()
            except EOFError as exc:
                process.join(5)
                raise TftpProcessError(f"it exited with code {process.exitcode}") from exc
            if message[0] == "log":
                log.log(message[1], "%s", message[2])
            elif message[0] == "ready":
                break
            else:
                process.join(5)
                raise TftpProcessError(str(message[1]))
        self._conn, self._child, self._port = parent, process, message[1]

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _read_child(self) -> None:
        """Answer the child's questions; when it dies, start another (unless stopping)."""
        while not self._stopping.is_set():
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                self._restart()
                continue
            kind = message[0]
            if kind == "generate":
                self._callers.submit(self._generate, *message[1:])
            elif kind == "log":
                log.log(message[1], "%s", message[2])
            elif kind == "counters":
                self.counters = TftpCounters(**message[1])

    def _restart(self) -> None:
        code = self._child.exitcode if self._child is not None else None
        log.error("TFTP process died (exit code %s); starting a new one on port %d",
                  code, self._port)
        self._conn.close()
        while not self._stopping.is_set():
            try:
                self._spawn()
            except TftpProcessError:
                log.exception("TFTP process restart failed; trying again")
                time.sleep(1)
                continue
            self.restarts += 1
            return

    def _generate(self, request_id: int, path: str, client: str) -> None:
        try:
            reply: tuple = ("generated", request_id, self.generated(path, client), None)
        except Exception as exc:
            log.exception("generating %s for %s failed", path, client)
            reply = ("generated", request_id, None, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            self._send(reply)


class _PipeLogHandler(logging.Handler):
    def __init__(self, send: Callable[[tuple], None]) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with contextlib.suppress(OSError):
            self.send(("log", record.levelno, text))


def _child_main(conn: Connection, root: str, host: str, port: int, options: dict) -> None:
    """The child process's entry point."""
    _Child(conn).run(TftpService(Path(root), None, host, port, **options))


class _Child:
    """Runs TftpService, forwards its logs and counters, asks the parent for generated files."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.waiting: dict[int, Future] = {}
        self.ids = itertools.count()
        self.stopped = threading.Event()
        logging.getLogger().addHandler(_PipeLogHandler(self.send))
        logging.getLogger().setLevel(logging.INFO)

    def send(self, message: tuple) -> None:
        with self.lock:
            self.conn.send(message)

    def generated(self, path: str, client: str) -> bytes | None:
        request_id = next(self.ids)
        answer: Future = Future()
        self.waiting[request_id] = answer
        self.send(("generate", request_id, path, client))
        try:
            data, error = answer.result(timeout=_GENERATE_SECONDS)
        finally:
            self.waiting.pop(request_id, None)
        if error is not None:
            raise RuntimeError(f"the server could not generate {path}: {error}")
        return data

    def run(self, service: TftpService) -> None:
        service.generated = self.generated
        try:
            service.start()
        except OSError as exc:
            self.send(("error", f"{service.host}:{service._requested_port}: {exc}"))
            return
        self.send(("ready", service.port))
        threading.Thread(target=self.publish_counters, args=(service,), daemon=True).start()
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "stop":
                    break
                answer = self.waiting.get(message[1])
                if answer is not None:
                    answer.set_result((message[2], message[3]))
        except (EOFError, OSError):
            pass  # the parent is gone: stop too
        finally:
            self.stopped.set()
            service.stop()
            with contextlib.suppress(OSError):
                self.send(("counters", dataclasses.asdict(service.counters)))

    def publish_counters(self, service: TftpService) -> None:
        last = None
        while not self.stopped.wait(_COUNTERS_EVERY):
            now = dataclasses.asdict(service.counters)
            if now != last:
                with contextlib.suppress(OSError):
                    self.send(("counters", now))
                last = now
