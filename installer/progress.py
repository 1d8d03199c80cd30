"""Install progress: weighted steps, one percentage, many reporters.

The backend only says which step it is in and how far; reporters decide how to show it: a rich
progress bar on the console, JSON lines for a driving program (``--json-events``), and POSTs to
the provisioning server so the dashboard follows the host. A reporter that fails (a server that is
down, a closed pipe) is logged and dropped from that call: it never stops an install.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress

from common import registration_key, wire
from installer import tls
from installer.local_bmc import BmcSighting

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5
LOG_UPLOAD_LIMIT = 256 * 1024
# How long an outage of the server a report waits out (HttpReporter): progress for a few
# minutes, the install's end far longer. Statuses worth another try: the server is (re)starting,
# overloaded, or behind a proxy that lost it.
PROGRESS_PATIENCE_S = 180.0
FINAL_PATIENCE_S = 900.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 15.0
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Event:
    step: str
    percent: int
    message: str
    # The machine's own BMC, sent once so the operator can assign it without looking it up.
    bmc: BmcSighting | None = None


def event_body(event: Event) -> dict[str, object]:
    """An event as JSON: ``bmc`` only on the event that carries one."""
    body = asdict(event)
    if event.bmc is None:
        del body["bmc"]
    return body


@dataclass(frozen=True)
class BuildDone:
    """What a finished install tells the server beside that it is done."""

    # The sha256 of the registration key left for the first-boot agent
    # (common.registration_key); None where the install left none (an upgrade, a restore).
    registration_key_sha256: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    weight: int


class Reporter(Protocol):
    def event(self, event: Event) -> None: ...
    def failed(self, reason: str, log_text: str) -> None: ...
    def done(self, built: BuildDone) -> None: ...


class Progress:
    """Turns (step, fraction done) into one overall percentage and fans it out."""

    def __init__(self, steps: Sequence[Step], reporters: Sequence[Reporter]) -> None:
        self.steps = tuple(steps)
        self.reporters = list(reporters)
        self._total = sum(s.weight for s in self.steps) or 1
        self._before: dict[str, int] = {}
        acc = 0
        for step in self.steps:
            self._before[step.name] = acc
            acc += step.weight
        self._weights = {s.name: s.weight for s in self.steps}
        self._last: tuple[str, int, str] | None = None
        self.events: list[Event] = []

    def update(self, step: str, fraction: float = 0.0, message: str = "") -> None:
        """Report ``step`` as ``fraction`` (0..1) done; an event the same as the last one (step,
        percentage and message) is not resent: the download reports each chunk it receives."""
        fraction = min(max(fraction, 0.0), 1.0)
        done = self._before[step] + self._weights[step] * fraction
        percent = int(100 * done / self._total)
        shown = message or step
        if self._last == (step, percent, shown):
            return
        self._last = (step, percent, shown)
        event = Event(step, percent, shown)
        self.events.append(event)
        self._each("event", event)

    def start(self, step: str, message: str = "") -> None:
        log.info("step %s: %s", step, message or step)
        self.update(step, 0.0, message or step)

    def bmc_seen(self, seen: BmcSighting) -> None:
        """Tell every reporter what this machine's BMC said of itself, at the current step."""
        step, percent, _ = self._last or (self.steps[0].name, 0, "")
        event = Event(step, percent, f"BMC seen: {seen.describe()}", bmc=seen)
        self.events.append(event)
        self._each("event", event)

    def failed(self, reason: str, log_text: str) -> None:
        self._each("failed", reason, log_text)

    def done(self, built: BuildDone | None = None) -> None:
        last = self.steps[-1].name if self.steps else "done"
        self.update(last, 1.0, "installation complete")
        self._each("done", built or BuildDone())

    def _each(self, method: str, *args: object) -> None:
        for reporter in self.reporters:
            # A reporter must never stop an install.
            try:
                getattr(reporter, method)(*args)
            except Exception as exc:
                log.warning("progress reporter %s failed: %s", type(reporter).__name__, exc)


class JsonLinesReporter:
    """One JSON object per line: events, then ``{"failed": ...}`` or ``{"done": true}``."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def _emit(self, data: dict[str, object]) -> None:
        self.stream.write(json.dumps(data) + "\n")
        self.stream.flush()

    def event(self, event: Event) -> None:
        self._emit(event_body(event))

    def failed(self, reason: str, log_text: str) -> None:
        self._emit({"failed": reason})

    def done(self, built: BuildDone) -> None:
        self._emit({"done": True})


class ConsoleReporter:
    """A rich progress bar, for an operator watching the console."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._console = Console(file=stream)
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            console=self._console, transient=False,
        )  # fmt: skip
        self._task = self._bar.add_task("starting", total=100)
        self._bar.start()

    def event(self, event: Event) -> None:
        self._bar.update(self._task, completed=event.percent, description=event.message[:40])

    def failed(self, reason: str, log_text: str) -> None:
        self._bar.stop()
        self._console.print(f"[bold red]Installation failed:[/] {reason}")

    def done(self, built: BuildDone) -> None:
        self._bar.update(self._task, completed=100)
        self._bar.stop()
        self._console.print("[bold green]Installation complete.[/]")


class ReportUndeliveredError(Exception):
    """A report the server refused, or did not take within the reporter's patience."""


@dataclass(frozen=True)
class _Report:
    path: str
    body: dict[str, object]


class HttpReporter:
    """POSTs to the provisioning server's install API with the host's one-time token.

    Events go out at most every ``min_interval`` seconds (always on a step change). Every
    report carries a sequence number (``seq``: 1, 2, 3... for this install), so one can be
    sent again when its answer never came: the server records it once (a replay of a report
    it did record is answered as the first was).

    Nothing is lost to a server that restarts. Events queue in order and a sender thread
    posts them, so the install never waits for the server: a failed post (no connection, a
    timeout, a 5xx or 429) is retried after 0.5, 1, 2... seconds (at most ``BACKOFF_MAX_S``
    apart) while the outage is shorter than ``patience``; past that, progress is dropped
    (each later event still gets one try). A refusal (any other 4xx) is final. ``done`` and
    ``failed`` first let the queued events go, then are retried for ``final_patience``: the
    server has to learn how the install ended, or it fails the host after its
    ``install_timeout`` and installs it again.
    """

    def __init__(
        self,
        server_url: str,
        token: str | None,
        min_interval: float = 1.0,
        *,
        patience: float = PROGRESS_PATIENCE_S,
        final_patience: float = FINAL_PATIENCE_S,
        backoff: float = BACKOFF_START_S,
    ) -> None:
        self.server_url = server_url
        self.token = token
        self.min_interval = min_interval
        self.patience = patience
        self.final_patience = final_patience
        self.backoff = backoff
        self._last_sent = 0.0
        self._last_step = ""
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: deque[_Report] = deque()
        self._busy = False  # the sender holds a report it took from the queue
        self._wake = threading.Condition(self._lock)
        self._sender: threading.Thread | None = None
        self._outage_since: float | None = None

    def _numbered(self, path: str, body: dict[str, object]) -> _Report:
        """The next report; the caller holds the lock, so numbers follow the queue's order."""
        self._seq += 1
        return _Report(path, {**body, "seq": self._seq})

    def _post(self, path: str, body: dict[str, object]) -> None:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - the server URL comes from the answer file
            wire.install_report_url(self.server_url, path),
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S):  # noqa: S310
            pass

    def _deliver(self, report: _Report, patience: float) -> None:
        """Post ``report`` until it lands, is refused, or the outage outlasts ``patience``."""
        delay = self.backoff
        while True:
            try:
                self._post(report.path, report.body)
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUSES:
                    raise ReportUndeliveredError(f"{report.path}: HTTP {exc.code}") from exc
                failure: Exception = exc
            except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
                if refused := tls.refused_certificate(exc):
                    raise ReportUndeliveredError(f"{report.path}: {tls.explain(refused)}") from exc
                failure = exc
            else:
                self._outage_since = None
                return
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
            if now - self._outage_since + delay > patience:
                raise ReportUndeliveredError(
                    f"{report.path} #{report.body['seq']}: no answer from the server for "
                    f"{now - self._outage_since:.0f} s: {failure}"
                ) from failure
            log.info("report %s #%s not delivered (%s); again in %.1f s",
                     report.path, report.body["seq"], failure, delay)  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _send_queued(self) -> None:
        while True:
            with self._wake:
                self._busy = False
                self._wake.notify_all()
                self._wake.wait_for(lambda: bool(self._pending))
                report = self._pending.popleft()
                self._busy = True
            try:
                self._deliver(report, self.patience)
            except ReportUndeliveredError as exc:
                log.warning("install progress not reported: %s", exc)

    def event(self, event: Event) -> None:
        now = time.monotonic()
        with self._wake:
            throttled = event.step == self._last_step and now - self._last_sent < self.min_interval
            if throttled and event.bmc is None:
                return
            self._last_step, self._last_sent = event.step, now
            self._pending.append(self._numbered(wire.INSTALL_EVENTS, event_body(event)))
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_queued, name="install-reports", daemon=True
                )
                self._sender.start()
            self._wake.notify_all()

    def _final(self, path: str, body: dict[str, object]) -> None:
        """After the queued events (each within its patience), ``report`` until it lands."""
        with self._wake:
            report = self._numbered(path, body)
            drained = self._wake.wait_for(
                lambda: not self._pending and not self._busy,
                timeout=self.patience + 2 * HTTP_TIMEOUT_S,
            )
            if not drained:  # the sender is stuck: what it holds no longer matters
                log.warning("%d progress reports dropped", len(self._pending))
                self._pending.clear()
        self._deliver(report, self.final_patience)

    def failed(self, reason: str, log_text: str) -> None:
        self._final(
            wire.INSTALL_FAILED, {"reason": reason, "log": log_text[-LOG_UPLOAD_LIMIT:]}
        )

    def done(self, built: BuildDone) -> None:
        body: dict[str, object] = {}
        if built.registration_key_sha256 is not None:
            body[registration_key.DIGEST_FIELD] = built.registration_key_sha256
        self._final(wire.INSTALL_DONE, body)
