"""waitress's "Task queue depth" warnings, one per request queued in a burst, reach the log as
one line per burst and then one summary line per interval at most."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from pxe.httpd.server import QueueWarnings, running_server

BURST = 12


def _warning(depth: int) -> logging.LogRecord:
    return logging.LogRecord("waitress.queue", logging.WARNING, "task.py", 113,
                             "Task queue depth is %d", (depth,), None)  # fmt: skip


@pytest.fixture
def fresh_filter() -> Iterator[None]:
    """The filter is one per process and remembers the warnings earlier tests' servers held
    back: this test's server gets a new one, and the old one is put back after."""
    queue = logging.getLogger("waitress.queue")
    old = [f for f in queue.filters if isinstance(f, QueueWarnings)]
    for f in old:
        queue.removeFilter(f)
    yield
    for f in [f for f in queue.filters if isinstance(f, QueueWarnings)]:
        queue.removeFilter(f)
    for f in old:
        queue.addFilter(f)


@pytest.mark.usefixtures("fresh_filter")
def test_a_burst_of_requests_logs_one_queue_warning(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask(__name__)

    @app.route("/slow")
    def slow() -> str:
        time.sleep(0.05)
        return "ok"

    caplog.set_level(logging.WARNING, logger="waitress.queue")
    with running_server(app, threads=1) as server:
        each = ["-o", "/dev/null", f"{server.url}/slow"]
        done = subprocess.run(["curl", "-sS", "--parallel", "--parallel-immediate",
                               "--parallel-max", str(BURST), "-w", "%{http_code}\n",
                               *each * BURST],
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout.split() == ["200"] * BURST
    queued = [r for r in caplog.records if r.name == "waitress.queue"]
    assert len(queued) == 1, [r.getMessage() for r in queued]
    assert queued[0].getMessage().startswith("Task queue depth is ")


def test_after_the_interval_one_line_sums_up_what_was_held() -> None:
    now = [100.0]
    warnings = QueueWarnings(interval=10, clock=lambda: now[0])
    first = _warning(3)
    assert warnings.filter(first)
    assert first.getMessage() == "Task queue depth is 3"  # the first of a burst, as it is
    held = [_warning(depth) for depth in (5, 40, 7)]
    assert not any(warnings.filter(record) for record in held)
    now[0] += 10
    summary = _warning(2)
    assert warnings.filter(summary)
    assert summary.getMessage() == (
        "waitress's task queue reached 40 requests waiting for a thread (4 warnings in 10 s)"
    )
    now[0] += 30  # a new burst long after: its first warning as it is again
    later = _warning(6)
    assert warnings.filter(later)
    assert later.getMessage() == "Task queue depth is 6"
    now[0] += 1
    assert not warnings.filter(_warning(9))
    now[0] += 24  # held since the last line, 25 s ago
    last = _warning(1)
    assert warnings.filter(last)
    assert last.getMessage() == (
        "waitress's task queue reached 9 requests waiting for a thread (2 warnings in 25 s)"
    )
