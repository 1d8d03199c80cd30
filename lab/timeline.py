"""When each VM passed each step of the boot chain, from its serial console and the server's events.

QEMU's serial log carries no timestamps, so a :class:`SerialWatcher` tails it while the VM runs
and stamps the first line that proves each step. Steps the server sees (install done, registered,
in pool) come from its events, stamped by the server. A timeline therefore also says which step
never happened: the first missing one is where the chain broke.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path


class Stage(StrEnum):
    DHCP = "dhcp"  # the firmware got an address (from the site's DHCP) and a boot offer
    LOADER = "loader"  # a network loader or script arrived (TFTP loader, or iPXE's script)
    BOOT_SCRIPT = "boot-script"  # iPXE fetched /boot/ipxe over HTTP from our server
    INSTALLER = "installer"  # the installer's kernel started (its banner on the serial console)
    INSTALL_DONE = "install-done"  # the installer reported success to the server
    XEN = "xen"  # Xen's banner after the reboot from disk
    DOM0_LOGIN = "dom0-login"  # dom0 printed a login prompt
    REGISTERED = "registered"  # the first-boot agent registered the host
    IN_POOL = "in-pool"  # the server placed the host in its pool


CHAIN: tuple[Stage, ...] = tuple(Stage)

# CSI sequences, charset selection, and the two-character ones (ESC c resets, ESC 7/8 ...).
_ANSI = re.compile(r"\x1b(?:\[[0-9;?=]*[A-Za-z]|[()][A-Z0-9]|[@-Z\\-_a-z=>78])|\r")


@dataclass(frozen=True)
class SerialMarker:
    stage: Stage
    pattern: re.Pattern[str]
    # The marker counts only once this stage was seen: both the installer and dom0 print
    # "Linux version", only the one after Xen's banner is dom0's.
    after: Stage | None = None
    before: Stage | None = None


SERIAL_MARKERS: tuple[SerialMarker, ...] = (
    SerialMarker(Stage.DHCP, re.compile(r"Configuring \(net\d [0-9a-f:]+\)[ .]*ok")),
    SerialMarker(Stage.DHCP, re.compile(r"Station IP address is \d+\.\d+\.\d+\.\d+")),
    SerialMarker(Stage.LOADER, re.compile(r"NBP file downloaded successfully")),
    SerialMarker(Stage.LOADER, re.compile(r"Downloading\.\.\.100%")),  # OVMF's HTTP Boot
    SerialMarker(Stage.LOADER, re.compile(r"tftp://\S+\.\.\. ok")),
    SerialMarker(Stage.LOADER, re.compile(r"https?://\S+/boot/ipxe\S*\.\.\. ok")),
    SerialMarker(Stage.BOOT_SCRIPT, re.compile(r"https?://\S+/boot/ipxe\S*\.\.\. ok")),
    SerialMarker(Stage.INSTALLER, re.compile(r"Linux version \d"), before=Stage.XEN),
    SerialMarker(Stage.XEN, re.compile(r"Xen version \d+\.\d+")),
    # getty's prompt starts a line; kernel messages may follow it on the same line.
    SerialMarker(Stage.DOM0_LOGIN, re.compile(r"^\S+ login:(?: |$)"), after=Stage.XEN),
)


# Lines after which the chain cannot go on by itself: the lab stops waiting for that VM.
FATAL_MARKERS: tuple[re.Pattern[str], ...] = (
    re.compile(r"xcp-installer: the install failed"),
    re.compile(r"Kernel panic - not syncing"),
    re.compile(r"\(XEN\) Panic on CPU"),
    re.compile(r"No bootable device"),
)


def clean(text: str) -> str:
    """Serial output without terminal escapes or carriage returns (OVMF paints a screen)."""
    return _ANSI.sub("", text)


@dataclass
class Timeline:
    """Seconds since power-on at which one VM reached each stage (absent: not reached)."""

    vm: str
    firmware: str
    seen: dict[Stage, float] = field(default_factory=dict)
    evidence: dict[Stage, str] = field(default_factory=dict)
    # The first serial line saying the chain broke for good, if any.
    fatal: str = ""

    def mark(self, stage: Stage, seconds: float, evidence: str = "") -> None:
        if stage not in self.seen:
            self.seen[stage] = round(seconds, 1)
            self.evidence[stage] = evidence.strip()[:160]

    def reached(self, stage: Stage) -> bool:
        return stage in self.seen

    def first_missing(self) -> Stage | None:
        """The first stage of the chain this VM never reached: where it broke."""
        for stage in CHAIN:
            if stage not in self.seen:
                return stage
        return None

    def last_reached(self) -> Stage | None:
        reached = [stage for stage in CHAIN if stage in self.seen]
        return reached[-1] if reached else None


def scan_line(timeline: Timeline, line: str, seconds: float) -> None:
    """Stamp every stage ``line`` proves, respecting each marker's order constraints."""
    if not timeline.fatal and any(p.search(line) for p in FATAL_MARKERS):
        timeline.fatal = f"{line.strip()[:160]} (at {seconds:.0f} s)"
    for marker in SERIAL_MARKERS:
        if timeline.reached(marker.stage):
            continue
        if marker.after and not timeline.reached(marker.after):
            continue
        if marker.before and timeline.reached(marker.before):
            continue
        if marker.pattern.search(line):
            timeline.mark(marker.stage, seconds, line)


def scan_text(timeline: Timeline, text: str, seconds: float) -> None:
    for line in clean(text).split("\n"):
        scan_line(timeline, line, seconds)


class SerialWatcher:
    """Tails one serial log in a thread and stamps stages as their lines appear.

    A partial last line (a prompt such as ``login:`` has no newline) is scanned as it stands and
    again once complete, so prompts count without waiting for a newline that never comes.
    """

    def __init__(self, path: Path, timeline: Timeline, started: float, poll: float = 0.25):
        self.path = path
        self.timeline = timeline
        self.started = started
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial-{timeline.vm}", daemon=True)
        self._lock = threading.Lock()
        self._offset = 0
        self._pending = ""

    def start(self) -> SerialWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.read_once(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self.read_once()

    def read_once(self, final: bool = False) -> None:
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
            except FileNotFoundError:
                return
            if not chunk and not final:
                return
            self._offset += len(chunk)
            now = time.monotonic() - self.started
            text = clean(self._pending + chunk.decode("utf-8", "replace"))
            lines = text.split("\n")
            self._pending = lines.pop()
            for line in lines:
                scan_line(self.timeline, line, now)
            if self._pending:
                scan_line(self.timeline, self._pending, now)


@dataclass(frozen=True)
class ServerEvent:
    """One entry of a host's history as the REST API reports it."""

    time: datetime
    kind: str
    step: str = ""
    message: str = ""


# Registration either places the host in its pool ("pool-joined", which is also the moment it
# registered) or leaves it registered: refused by the pool, or no pool at all.
_KIND_STAGES: dict[str, tuple[Stage, ...]] = {
    "done": (Stage.INSTALL_DONE,),
    "pool-joined": (Stage.REGISTERED, Stage.IN_POOL),
    "pool-refused": (Stage.REGISTERED,),
}


def stages_of_event(event: ServerEvent) -> tuple[Stage, ...]:
    """The chain stages a server event proves (none for most events)."""
    kind = event.kind.lower()
    if kind == "state" and event.message.startswith("registered"):
        return (Stage.REGISTERED,)
    return _KIND_STAGES.get(kind, ())


def apply_events(timeline: Timeline, events: Iterable[ServerEvent], powered_on: datetime) -> None:
    """Stamp the stages the server's events prove, in seconds since the VM's power-on."""
    for event in sorted(events, key=lambda e: e.time):
        for stage in stages_of_event(event):
            seconds = (event.time - powered_on).total_seconds()
            timeline.mark(stage, seconds, f"server event {event.kind}: {event.message}")


def table_rows(timelines: Iterable[Timeline]) -> list[list[str]]:
    """Header plus one row per VM; a dash where a stage was not reached."""
    rows = [["vm", "firmware", *[stage.value for stage in CHAIN]]]
    for tl in timelines:
        cells = [f"{tl.seen[s]:.1f}" if s in tl.seen else "-" for s in CHAIN]
        rows.append([tl.vm, tl.firmware, *cells])
    return rows


def render_table(timelines: Iterable[Timeline]) -> str:
    rows = table_rows(timelines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i > 1 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def skip_existing(watcher: SerialWatcher) -> SerialWatcher:
    """``watcher`` set to read only what its log gains from now on: a later boot of a VM whose
    log (appended to across power cycles) already holds an earlier one."""
    try:
        size = watcher.path.stat().st_size
    except FileNotFoundError:
        size = 0
    with watcher._lock:  # set before the watcher starts reading
        watcher._offset = size
    return watcher


def shifted(timeline: Timeline, seconds: float) -> Timeline:
    """The same timeline counted from ``seconds`` later (a VM's own power-on request, when the
    timeline was stamped from an earlier common start)."""
    moved = Timeline(timeline.vm, timeline.firmware, evidence=dict(timeline.evidence),
                     fatal=timeline.fatal)  # fmt: skip
    moved.seen = {stage: round(value - seconds, 1) for stage, value in timeline.seen.items()}
    return moved
