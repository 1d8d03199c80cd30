"""The installer's reports survive a server killed with SIGKILL and lost answers: each report is
retried until it lands, and recorded once however often it was sent (its ``seq``).

Real parts only: ``xcp-provision serve`` as a process on loopback, the installer's own
:class:`installer.progress.HttpReporter`, and a real TCP proxy that drops the answers of
requests the server did process.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from sqlalchemy import select
from support.serve import free_port, serve_process
from support.tcp_proxy import Cut, FaultyProxy

from installer.progress import HttpReporter, Progress, Step
from pxe.config import Settings
from pxe.db.models import Event, Host
from pxe.db.session import Database
from pxe.store.tokens import create_api_token
from tests.support.boot_script import answer_file_url, install_token

MAC = "52:54:00:5e:00:01"
STEPS = [Step(name, 1) for name in ("prepare", "partition", "mount", "laydown", "configure",
                                    "bootloader", "finish")]  # fmt: skip
SERVE_ARGS = ("--demo", "--tftp-port", "0", "--no-dhcp", "--workers", "1")


def _data_dir(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    data.mkdir()
    database = Database(Settings(data_dir=data).database)
    database.migrate()
    with database.scope() as session:
        api = create_api_token(session, "tests")
    database.dispose()
    return data, api


def _call(base: str, path: str, body: dict | None = None, token: str | None = None) -> str:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _installing(base: str, api: str) -> str:
    """A host whose installer fetched its answer file, as a booted installer has: its token."""
    _call(base, "/api/v1/hosts", {"mac": MAC, "hostname": "node1", "profile": "demo"}, api)
    script = _call(base, f"/boot/ipxe?mac={MAC}")
    answer = answer_file_url(script)
    urllib.request.urlopen(answer, timeout=10).read()
    return install_token(answer)


def _reports(data: Path) -> tuple[list[tuple[str, str, int | None]], str, int | None]:
    """The installer's reports the server recorded (kind, step, seq), the host's state and its
    highest report number."""
    database = Database(Settings(data_dir=data).database)
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(
                select(Event.kind, Event.step, Event.seq)
                .where(Event.kind.in_(["progress", "done", "failed"]))
                .order_by(Event.id)
            ).all()
            host = connection.execute(select(Host.state, Host.report_seq)).one()
    finally:
        database.dispose()
    return [tuple(row) for row in rows], host.state, host.report_seq


def _wait_for(data: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(_reports(data)[0]) < count:
        assert time.monotonic() < deadline, f"the server never recorded {count} reports"
        time.sleep(0.1)


def _expected(seqs: int) -> list[tuple[str, str, int]]:
    """Every step's start once, in order, then the last step's 100 %, then build-done."""
    steps = [s.name for s in STEPS]
    progress = [("progress", name, n) for n, name in enumerate(steps, start=1)]
    tail = [("progress", steps[-1], len(steps) + 1), ("done", "", len(steps) + 2)]
    assert len(progress) + len(tail) == seqs
    return progress + tail


def test_reports_outlive_a_server_killed_and_restarted(tmp_path: Path) -> None:
    data, api = _data_dir(tmp_path)
    port = free_port()
    reporter = HttpReporter(f"http://127.0.0.1:{port}", None, min_interval=0, backoff=0.2,
                            patience=60, final_patience=60)  # fmt: skip
    progress = Progress(STEPS, [reporter])
    with serve_process(data, *SERVE_ARGS, http_port=port) as (base, proc):
        reporter.token = _installing(base, api)
        for step in STEPS[:3]:
            progress.start(step.name)
        _wait_for(data, 3)
        proc.kill()  # SIGKILL: no shutdown, no answer to whatever was in flight
        proc.wait()
    for step in STEPS[3:6]:  # reported while no server listens: queued and retried
        progress.start(step.name)
    time.sleep(3)
    with serve_process(data, *SERVE_ARGS, http_port=port):
        progress.start(STEPS[6].name)
        progress.done()  # returns once the server took it
        events, state, last = _reports(data)
    assert events == _expected(9)
    assert (state, last) == ("installed", 9)


def test_a_report_whose_answer_was_lost_is_recorded_once(tmp_path: Path) -> None:
    data, api = _data_dir(tmp_path)
    with serve_process(data, *SERVE_ARGS) as (base, _proc):
        token = _installing(base, api)
        port = int(base.rsplit(":", 1)[1])
        # The first report never reaches the server: it must be sent again. The next two and
        # the first build-done do, and the server answers; the proxy drops those answers, so
        # the reporter sends them again, and the server must record each once.
        cuts = (Cut(b"/installs/events", 1, None), Cut(b"/installs/events", 2, 0),
                Cut(b"/installs/done", 1, 0))  # fmt: skip
        with FaultyProxy(("127.0.0.1", port), *cuts) as proxy:
            reporter = HttpReporter(proxy.url, token, min_interval=0, backoff=0.1,
                                    patience=30, final_patience=30)  # fmt: skip
            progress = Progress(STEPS, [reporter])
            for step in STEPS:
                progress.start(step.name)
            progress.done()
            assert proxy.cuts == 4
        events, state, last = _reports(data)
    assert events == _expected(9)
    assert (state, last) == ("installed", 9)
