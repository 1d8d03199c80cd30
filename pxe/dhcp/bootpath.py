"""Which way a host network-booted (BIOS PXE, UEFI PXE, UEFI HTTP Boot, iPXE), as a host event.

ProxyDHCP is the one place that sees how a boot starts: the firmware's DHCP request names its
protocol in the vendor class (``PXEClient`` or ``HTTPClient``), its firmware in option 93, and
iPXE adds user class ``iPXE``. The path is the first request of a boot; the iPXE that the
firmware then loads asks again, and that request (like retransmissions and the port-4011
request) belongs to the same boot, so one event is written per boot and host. A boot runs one
iPXE, which asks in one DHCP exchange (one transaction ID, retransmissions included): a firmware
request after it, or an iPXE request of another exchange, is the machine starting again (a
reinstall can power it on again within minutes), so it starts a new boot however soon it comes.

The DHCP thread only classifies and queues (no I/O, nothing waits on the database); a writer
thread inserts a ``boot`` event, one INSERT, into the host's history, which the REST API and the
dashboard show. The host's row is never written: the boot decision's conditional UPDATE of that
row must not lose a race to this. A machine the inventory does not know yet (it is recorded when
its iPXE asks for ``/boot/ipxe``, after these DHCP requests) is looked for again, all such MACs
in one query, until it appears or :data:`PENDING_SECONDS` pass.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Connection, insert, select

from pxe.db.models import Event, HostMac
from pxe.db.session import Database
from pxe.db.write_retry import write_statements
from pxe.dhcp import options as opt

log = logging.getLogger(__name__)

EVENT_KIND = "boot"
# Requests of one MAC this close to the one that started its boot belong to that boot, unless
# they come after the boot's iPXE exchange (see above).
SAME_BOOT_SECONDS = 180.0
# How long an unknown MAC's boot waits for the host to appear in the inventory.
PENDING_SECONDS = 600.0
RETRY_SECONDS = 3.0
# Bounds on what a rack of unknown or misbehaving clients can make us remember.
MAX_REMEMBERED = 4096


class BootPath(StrEnum):
    BIOS_PXE = "BIOS PXE"
    UEFI_PXE = "UEFI PXE"
    UEFI_HTTP = "UEFI HTTP"
    IPXE = "iPXE"  # a NIC whose own boot ROM is iPXE (no firmware PXE before it)


def classify(options: dict[int, bytes]) -> BootPath | None:
    """The path a DHCP request shows, or ``None`` for a client that is not network-booting."""
    if opt.is_ipxe(options):
        return BootPath.IPXE
    if opt.is_http_client(options):
        return BootPath.UEFI_HTTP
    if opt.is_pxe_client(options):
        return BootPath.BIOS_PXE if opt.client_arch(options) == 0 else BootPath.UEFI_PXE
    return None


def describe(options: dict[int, bytes]) -> str:
    """What the request said, for the event's message."""
    vendor = options.get(opt.VENDOR_CLASS, b"").decode("ascii", "replace")
    text = f"vendor class {vendor!r}, architecture {opt.client_arch(options)}"
    return text + (", user class iPXE" if opt.is_ipxe(options) else "")


@dataclass
class _Boot:
    """A MAC's boot as the DHCP thread follows it."""

    path: BootPath
    since: float
    ipxe_xid: int | None  # the transaction of the boot's iPXE, once it asked


@dataclass(frozen=True)
class BootNote:
    mac: str
    path: BootPath
    detail: str
    when: datetime  # when the request came, which is when the event happened


class BootPathRecorder:
    """``note`` on the DHCP thread; a writer thread turns notes into ``boot`` events."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.monotonic,
                 same_boot_seconds: float = SAME_BOOT_SECONDS) -> None:
        self.database = database
        self.written = 0
        self._clock = clock
        self._same_boot = same_boot_seconds
        self._started: dict[str, _Boot] = {}  # the DHCP thread's alone
        self._queue: queue.SimpleQueue[BootNote | None] = queue.SimpleQueue()
        self._pending: dict[str, tuple[BootNote, float]] = {}  # the writer's alone
        self._thread: threading.Thread | None = None

    def note(self, mac: str, options: dict[int, bytes], xid: int) -> None:
        """A request from ``mac`` (DHCP transaction ``xid``) was answered. Cheap: a dict lookup
        and a queue put."""
        path = classify(options)
        if path is None:
            return
        now = self._clock()
        ipxe = xid if path is BootPath.IPXE else None
        boot = self._started.get(mac)
        if (boot is not None and now - boot.since < self._same_boot
                and boot.ipxe_xid in (None, ipxe)):  # fmt: skip
            boot.ipxe_xid = ipxe  # firmware before its iPXE, or that iPXE's exchange
            return  # the boot it started: retransmission, port 4011, or the iPXE it loaded
        if len(self._started) >= MAX_REMEMBERED:
            self._forget_before(now - self._same_boot)
        self._started[mac] = _Boot(path, now, ipxe)
        self._queue.put(BootNote(mac, path, describe(options), datetime.now(UTC)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._write_loop, name="bootpath", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued for known hosts, then end the writer."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _forget_before(self, limit: float) -> None:
        for mac in [m for m, boot in self._started.items() if boot.since < limit]:
            del self._started[mac]
        while len(self._started) >= MAX_REMEMBERED:
            self._started.pop(next(iter(self._started)))

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=RETRY_SECONDS if self._pending else None)
            except queue.Empty:
                item = False  # time to look for the pending MACs again
            batch = [] if item is False else [item]
            while True:  # whatever else is queued goes in the same transaction
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            now = self._clock()
            for note in batch:
                if note is not None and (note.mac in self._pending
                                         or len(self._pending) < MAX_REMEMBERED):
                    self._pending[note.mac] = (note, now)
            try:
                self._write_pending(now)
            except Exception:  # the database is away: keep the notes, try again later
                log.exception("recording boot paths failed")
            if stopping:
                return

    def _write_pending(self, now: float) -> None:
        for mac in [m for m, (_, since) in self._pending.items() if now - since > PENDING_SECONDS]:
            log.info("boot path of %s not recorded: no host with that MAC appeared", mac)
            del self._pending[mac]
        if not self._pending:
            return
        with self.database.engine.connect() as connection:  # a read: no write lock
            rows = connection.execute(
                select(HostMac.mac, HostMac.host_id).where(HostMac.mac.in_(list(self._pending)))
            )
            hosts = dict(rows.all())
        if not hosts:
            return
        known = [note for note, _ in self._pending.values() if note.mac in hosts]

        def write(connection: Connection) -> None:
            connection.execute(insert(Event), [
                {"host_id": hosts[n.mac], "time": n.when, "kind": EVENT_KIND,
                 "step": n.path.value, "percent": None,
                 "message": f"network boot by {n.path.value} ({n.detail})"}
                for n in known
            ])  # fmt: skip

        write_statements(self.database, write)
        for note in known:
            del self._pending[note.mac]
            self.written += 1
