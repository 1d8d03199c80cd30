"""Install progress: weighted steps, one percentage, many reporters.

The backend only says which step it is in and how far; reporters decide how to show it: a rich
progress bar on the console, JSON lines for a driving program (``--json-events``), and POSTs to
the provisioning server so the dashboard follows the host. A reporter that fails (a server that is
down, a closed pipe) is logged and dropped from that call: it never stops an install.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress

from common import wire

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5
LOG_UPLOAD_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Event:
    step: str
    percent: int
    message: str


@dataclass(frozen=True)
class Step:
    name: str
    weight: int


class Reporter(Protocol):
    def event(self, event: Event) -> None: ...
    def failed(self, reason: str, log_text: str) -> None: ...
    def done(self) -> None: ...


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
        self._last: tuple[str, int] | None = None
        self.events: list[Event] = []

    def update(self, step: str, fraction: float = 0.0, message: str = "") -> None:
        """Report ``step`` as ``fraction`` (0..1) done; repeated percentages are not resent."""
        fraction = min(max(fraction, 0.0), 1.0)
        done = self._before[step] + self._weights[step] * fraction
        percent = int(100 * done / self._total)
        if self._last == (step, percent) and not message:
            return
        self._last = (step, percent)
        event = Event(step, percent, message or step)
        self.events.append(event)
        self._each("event", event)

    def start(self, step: str, message: str = "") -> None:
        log.info("step %s: %s", step, message or step)
        self.update(step, 0.0, message or step)

    def failed(self, reason: str, log_text: str) -> None:
        self._each("failed", reason, log_text)

    def done(self) -> None:
        last = self.steps[-1].name if self.steps else "done"
        self.update(last, 1.0, "installation complete")
        self._each("done")

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
        self._emit(asdict(event))

    def failed(self, reason: str, log_text: str) -> None:
        self._emit({"failed": reason})

    def done(self) -> None:
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

    def done(self) -> None:
        self._bar.update(self._task, completed=100)
        self._bar.stop()
        self._console.print("[bold green]Installation complete.[/]")


class HttpReporter:
    """POSTs to the provisioning server's install API with the host's one-time token.

    Events go out at most every ``min_interval`` seconds (always on a step change), from the
    install thread with a short timeout, so a slow server slows nothing for long.
    """

    def __init__(self, server_url: str, token: str | None, min_interval: float = 1.0) -> None:
        self.server_url = server_url
        self.token = token
        self.min_interval = min_interval
        self._last_sent = 0.0
        self._last_step = ""
        self._lock = threading.Lock()

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

    def event(self, event: Event) -> None:
        now = time.monotonic()
        with self._lock:
            if event.step == self._last_step and now - self._last_sent < self.min_interval:
                return
            self._last_step, self._last_sent = event.step, now
        self._post(wire.INSTALL_EVENTS, asdict(event))

    def failed(self, reason: str, log_text: str) -> None:
        self._post(wire.INSTALL_FAILED, {"reason": reason, "log": log_text[-LOG_UPLOAD_LIMIT:]})

    def done(self) -> None:
        self._post(wire.INSTALL_DONE, {})
