"""``xcp-provision serve`` as operators run it: a real process, real ports, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from support.serve import free_port, wait_healthy

from common import runner
from images.demo import build_demo_release
from pxe.cli import serve as serve_module
from pxe.cli.serve import seed_demo
from pxe.config import Settings
from pxe.db.session import close_databases, open_database
from pxe.store.errors import NotFoundError
from pxe.store.profiles import list_profiles


def test_serve_demo_http_tftp_dhcp_then_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    http_port = free_port(socket.SOCK_STREAM)
    tftp_port = free_port(socket.SOCK_DGRAM)
    exe = Path(sys.executable).parent / "xcp-provision"
    dhcp_ports = {"XCP_PROVISION_DHCP_PORT": str(free_port(socket.SOCK_DGRAM)),
                  "XCP_PROVISION_PXE_PORT": str(free_port(socket.SOCK_DGRAM))}  # fmt: skip
    proc = runner.start(
        [exe, "serve", "--demo", "--data-dir", data, "--bind", "127.0.0.1",
         "--http-port", str(http_port), "--tftp-port", str(tftp_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **dhcp_ports},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{http_port}"
        assert wait_healthy(base, proc) == b'{"status":"ok"}\n'
        assert (data / "releases" / "demo" / "manifest.json").is_file()
        chain = urllib.request.urlopen(f"{base}/boot/ipxe", timeout=10).read().decode()
        assert chain.startswith(f"#!ipxe\nchain {base}/boot/ipxe?mac=")
        fetched = runner.run(
            ["curl", "-sS", "--max-time", "10", f"tftp://127.0.0.1:{tftp_port}/boot.ipxe"]
        )
        assert fetched.stdout.startswith("#!ipxe") and f"{base}/boot/ipxe" in fetched.stdout
        # A per-host TFTP file is decided from the inventory, like the iPXE script over HTTP.
        pxelinux = runner.run(
            ["curl", "-sS", "--max-time", "10",
             f"tftp://127.0.0.1:{tftp_port}/pxelinux.cfg/01-52-54-00-aa-bb-cc"]
        ).stdout  # fmt: skip
        assert "52:54:00:aa:bb:cc" in pxelinux and "assign it a profile" in pxelinux
        listed = runner.run([exe, "hosts", "list", "--json", "--data-dir", data]).stdout
        assert [h["macs"] for h in json.loads(listed)] == [["52:54:00:aa:bb:cc"]]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output.decode()
        assert b"SIGTERM received, stopping" in output
        assert b"profile 'demo' created" in output
        assert (
            f"ProxyDHCP answering on 127.0.0.1:({dhcp_ports['XCP_PROVISION_DHCP_PORT']}".encode()
            in output
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_stops_serve_under_load(tmp_path: Path, workers: str) -> None:
    """SIGTERM arriving while waitress handles sockets (not while it waits) still stops it, in
    serve's own process (one worker) as in worker processes."""
    http_port = free_port(socket.SOCK_STREAM)
    exe = Path(sys.executable).parent / "xcp-provision"
    proc = runner.start(
        [exe, "serve", "--data-dir", tmp_path / "data", "--bind", "127.0.0.1",
         "--http-port", str(http_port), "--tftp-port", "0", "--no-dhcp", "--workers", workers],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2).read()
            except OSError:
                time.sleep(0.01)

    workers = [threading.Thread(target=hammer) for _ in range(8)]
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}", proc)
        for worker in workers:
            worker.start()
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output.decode()
        assert b"SIGTERM received, stopping" in output
    finally:
        stop.set()
        for worker in workers:
            if worker.is_alive():
                worker.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_sigterm_while_stopping_changes_nothing(tmp_path: Path) -> None:
    http_port = free_port(socket.SOCK_STREAM)
    exe = Path(sys.executable).parent / "xcp-provision"
    proc = runner.start(
        [exe, "serve", "--data-dir", tmp_path / "data", "--bind", "127.0.0.1",
         "--http-port", str(http_port), "--tftp-port", "0", "--no-dhcp", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}", proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # serve is now stopping its workers
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output.decode()
        assert b"SIGTERM received while stopping; still stopping" in output
        assert b"Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_seeded_by_another_server_in_between_is_left_alone(tmp_path: Path, monkeypatch):
    """Two servers on one database seed together: the other may create the profile between this
    one's read and its insert, and this one must start all the same."""
    settings = Settings(data_dir=tmp_path / "data")
    database = open_database(settings)
    try:
        seed_demo(settings, database, build_demo_release)  # the other server, first

        def missed(_session: object, ref: str) -> None:  # read before the other committed
            raise NotFoundError("profile", ref)

        monkeypatch.setattr(serve_module, "get_profile", missed)
        seed_demo(settings, database, build_demo_release)
        with database.scope() as session:
            assert [p.name for p in list_profiles(session)] == ["demo"]
    finally:
        close_databases()
