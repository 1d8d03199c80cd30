"""TftpProcess: the same TFTP service in a child process, fetched by curl, killed and reborn."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pxe.tftp.process import TftpProcess, TftpProcessError


def curl(port: int, path: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "30", "-o", str(out),
                           f"tftp://127.0.0.1:{port}/{path}"],
                          capture_output=True, text=True, check=False)


def wait_for(predicate, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "loader.bin").write_bytes(os.urandom(100_000))
    asked: list[tuple[str, str]] = []

    def generated(path: str, client: str) -> bytes | None:
        asked.append((path, client))
        if path == "boom":
            raise RuntimeError("inventory down")
        return f"for {client}\n".encode() if path == "host.cfg" else None

    service = TftpProcess(root, generated, host="127.0.0.1", port=0)
    service.start()
    yield service, root, asked
    service.stop()


def test_serves_disk_and_generated_files_from_the_child(served, tmp_path):
    service, root, asked = served
    assert service.pid != os.getpid()
    assert curl(service.port, "loader.bin", tmp_path / "a").returncode == 0
    assert (tmp_path / "a").read_bytes() == (root / "loader.bin").read_bytes()
    assert curl(service.port, "host.cfg", tmp_path / "b").returncode == 0
    assert (tmp_path / "b").read_text() == "for 127.0.0.1\n"
    assert ("host.cfg", "127.0.0.1") in asked  # asked in this (the parent) process
    assert wait_for(lambda: service.counters.transfers == 2)
    assert service.counters.bytes == 100_000 + len("for 127.0.0.1\n")


def test_parent_side_failure_fails_one_transfer(served, tmp_path):
    service, _, _ = served
    assert curl(service.port, "boom", tmp_path / "x").returncode != 0
    assert curl(service.port, "loader.bin", tmp_path / "y").returncode == 0
    assert wait_for(lambda: service.counters.crashed == 1)


def test_child_killed_is_replaced_on_the_same_port(served, tmp_path):
    service, root, _ = served
    port, first = service.port, service.pid
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: service.restarts == 1)
    assert service.pid != first
    assert service.port == port
    assert curl(port, "loader.bin", tmp_path / "z").returncode == 0
    assert (tmp_path / "z").read_bytes() == (root / "loader.bin").read_bytes()


def test_log_lines_reach_the_parent(served, tmp_path, caplog):
    service, _, _ = served
    with caplog.at_level("INFO", logger="pxe.tftp.server"):
        assert curl(service.port, "loader.bin", tmp_path / "l").returncode == 0
        assert wait_for(lambda: any("tftp sent loader.bin" in r.getMessage()
                                    for r in caplog.records))


def test_busy_port_fails_in_start(tmp_path):
    holder = TftpProcess(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0)
    holder.start()
    try:
        clash = TftpProcess(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=holder.port)
        with pytest.raises(TftpProcessError, match="did not start"):
            clash.start()
    finally:
        holder.stop()
