"""``serve`` with several HTTP worker processes: a socket each on one port, totals summed over
workers, a dead worker replaced on its socket, nothing left behind on SIGTERM."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from support.serve import free_port, wait_healthy

from common import runner
from pxe.web.dashboard.login import secret_key

EXE = Path(sys.executable).parent / "xcp-provision"


HTTP_WORKER, TFTP_PUMP = "pxe.httpd.worker", "pxe.tftp.pump"


def _children(pid: int, module: str) -> set[int]:
    """The children of ``pid`` running ``python -m module``."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    found = set()
    for child in map(int, text.split()):
        with contextlib.suppress(FileNotFoundError):
            if module in Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0"):
                found.add(child)
    return found


def _wait_children(pid: int, count: int, other_than: set[int] = frozenset(),
                   module: str = HTTP_WORKER) -> set[int]:  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(pid, module)
        if len(children) == count and not children & other_than:
            return children
        time.sleep(0.1)
    raise AssertionError(f"serve {pid} runs {_children(pid, module)} of {module}, "
                         f"expected {count} new")  # fmt: skip


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _counted(metrics: str, sample: str, route: str | None = None) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == sample and (route is None or s.labels.get("route") == route)
    )


def _listeners(port: int) -> list[tuple[int, ...]]:
    """For each socket listening on ``port``, the pids holding it (sorted)."""
    lines = runner.run(["ss", "-Hltnp", f"sport = :{port}"]).stdout.splitlines()
    return sorted(tuple(sorted(int(pid) for pid in re.findall(r"pid=(\d+)", line)))
                  for line in lines)  # fmt: skip


def _worker_count(run_dir: Path, pid: int, route: str) -> float:
    """What one worker counted, from its own file of the multiprocess totals."""
    files = [str(run_dir / "metrics" / f"counter_{pid}.db")]
    return sum(
        s.value
        for family in MultiProcessCollector.merge(files)
        for s in family.samples
        if s.name == "xcp_provision_http_requests_total" and s.labels.get("route") == route
    )


def test_workers_each_listen_on_the_port_and_share_totals(tmp_path: Path) -> None:
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    base = f"http://127.0.0.1:{http_port}"
    data = tmp_path / "data"
    proc = runner.start(
        [EXE, "serve", "--data-dir", data, "--bind", "127.0.0.1", "--workers", "2",
         "--http-port", str(http_port), "--tftp-port", str(tftp_port), "--no-dhcp"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_healthy(base, proc)
        first, second = sorted(_wait_children(proc.pid, 2))
        pumps = _wait_children(proc.pid, 2, module=TFTP_PUMP)  # one per worker
        # One socket per worker, each also held by serve (to hand it to a replacement).
        assert _listeners(http_port) == [(proc.pid, first), (proc.pid, second)]

        # New connections are spread over both sockets; /metrics sums what each worker counted.
        for _ in range(40):
            assert _get(f"{base}/boot/ipxe").startswith("#!ipxe")
        runner.run(["curl", "-sS", "--max-time", "10", "-o", str(tmp_path / "boot.ipxe"),
                    f"tftp://127.0.0.1:{tftp_port}/boot.ipxe"])  # fmt: skip
        own = [_worker_count(data / "run", pid, "/boot/ipxe") for pid in (first, second)]
        assert min(own) > 0 and sum(own) == 40
        metrics = _get(f"{base}/metrics")
        assert _counted(metrics, "xcp_provision_http_requests_total", "/boot/ipxe") == 40
        # Counted once the pump has heard the client's last ACK, which curl does not wait for.
        deadline = time.monotonic() + 10
        while _counted(metrics, "xcp_provision_tftp_transfers_total") != 1:
            assert time.monotonic() < deadline, "the TFTP transfer was never counted"
            time.sleep(0.1)
            metrics = _get(f"{base}/metrics")

        # A worker killed outright is replaced on its socket (connections queued there are
        # served, none hangs), and what it counted still counts.
        runner.run(["kill", "-KILL", str(first)])
        replaced = _wait_children(proc.pid, 2, other_than={first})
        assert second in replaced
        (newcomer,) = replaced - {second}
        assert _listeners(http_port) == sorted([(proc.pid, newcomer), (proc.pid, second)])
        for _ in range(20):
            assert _get(f"{base}/boot/ipxe").startswith("#!ipxe")
        assert _counted(_get(f"{base}/metrics"), "xcp_provision_http_requests_total",
                        "/boot/ipxe") == 60  # fmt: skip

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output.decode()
        assert b"HTTP worker 0" in output and b"exited with status -9" in output
        for pid in replaced | pumps:
            assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_in_use_stops_serve_before_any_worker(tmp_path: Path) -> None:
    """Workers' sockets could join another process's SO_REUSEPORT group on the port: they must
    not, even when that process is another serve."""
    with socket.create_server(("127.0.0.1", 0), reuse_port=True) as taken:
        port = taken.getsockname()[1]
        result = runner.run(
            [EXE, "serve", "--data-dir", tmp_path / "data", "--bind", "127.0.0.1",
             "--workers", "2", "--http-port", str(port), "--tftp-port", "0", "--no-dhcp"],
            check=False, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"HTTP cannot start on port {port}" in result.stderr
    assert "Address already in use" in result.stderr


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "gone"


def test_workers_die_with_a_killed_serve(tmp_path: Path) -> None:
    """SIGKILL leaves serve no chance to stop its workers and TFTP pumps: they notice and
    leave."""
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = runner.start(
        [EXE, "serve", "--data-dir", tmp_path / "data", "--bind", "127.0.0.1", "--workers", "2",
         "--http-port", str(http_port), "--tftp-port", str(tftp_port), "--no-dhcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}", proc)
        workers = _wait_children(proc.pid, 2) | _wait_children(proc.pid, 2, module=TFTP_PUMP)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_state(pid) not in ("gone", "Z") for pid in workers):
        assert time.monotonic() < deadline, f"children {workers} outlived serve"
        time.sleep(0.1)
    with socket.socket() as sock:
        # SO_REUSEADDR lets the bind past the health check's TIME_WAIT, never past a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", http_port))
        sock.listen()  # nobody listens on the port any more


def test_processes_starting_at_once_agree_on_the_dashboard_key(tmp_path: Path) -> None:
    with ProcessPoolExecutor(8) as pool:
        keys = set(pool.map(secret_key, [tmp_path] * 32))
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard-secret-key"]
