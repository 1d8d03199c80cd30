"""RFC 7440 windows against a real client that asks for them: atftp (EDK2's client asks too).

On loopback, byte-exact files for several windows, across a block-number rollover; then on a
link that loses DATA packets (nftables on the loopback of a namespace the test creates), where
gaps inside a window must be resent from the client's last in-order block.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dhcp_proxy import in_netns

from common.runner import run
from pxe.tftp.download import MAX_WINDOW, accepted_window
from pxe.tftp.files import GeneratedFiles
from pxe.tftp.loaders import prepare_tftp_root
from pxe.tftp.server import TftpService

pytestmark = pytest.mark.root


def nobody(mac: str, client_ip: str) -> None:
    return None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = prepare_tftp_root(tmp_path_factory.mktemp("data"))
    (root / "loader.bin").write_bytes(random.Random(3).randbytes(1024 * 1024 + 5))
    # 8-byte blocks: 75,001 of them, so the block number rolls over once.
    (root / "rollover.bin").write_bytes(random.Random(4).randbytes(75_000 * 8))
    return root


def start_service(root: Path) -> TftpService:
    service = TftpService(root, GeneratedFiles(nobody, "http://127.0.0.1:8080"),
                          host="127.0.0.1", port=0, timeout=0.5)
    service.start()
    return service


@pytest.fixture(scope="module")
def service(root: Path) -> Iterator[TftpService]:
    service = start_service(root)
    yield service
    service.stop()


def atftp(port: int, name: str, out: Path, *options: str, netns: str | None = None,
          trace: bool = False) -> subprocess.CompletedProcess:
    argv = ["atftp", *(["--trace"] if trace else []), "--tftp-timeout", "1"]
    for option in options:
        argv += ["--option", option]
    argv += ["-g", "-r", name, "-l", str(out), "127.0.0.1", str(port)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_window_granted_is_the_clients_up_to_a_ceiling():
    assert accepted_window("8") == 8
    assert accepted_window("1000") == MAX_WINDOW
    for bad in ("0", "65536", "-3"):
        with pytest.raises(ValueError, match="outside 1-65535"):
            accepted_window(bad)


def test_the_oack_grants_the_window_and_the_client_acks_once_per_window(service, root,
                                                                        tmp_path):
    out = tmp_path / "undionly.kpxe"
    proc = atftp(service.port, "undionly.kpxe", out, "windowsize 8", "blksize 1468", trace=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (root / "undionly.kpxe").read_bytes()
    trace = proc.stdout + proc.stderr
    assert "windowsize: 8" in trace.split("received OACK", 1)[1].splitlines()[0]
    blocks = -(-out.stat().st_size // 1468)
    acks = trace.count("sent ACK")
    # ACK 0, then one per full window and one for the last block: never one per block.
    assert acks == 1 + blocks // 8 + (1 if blocks % 8 else 0), trace[-2000:]


@pytest.mark.parametrize("window", ["2", "16", "64", "500"])
def test_windowed_downloads_are_byte_exact(service, root, tmp_path, window):
    out = tmp_path / "loader.bin"
    proc = atftp(service.port, "loader.bin", out, f"windowsize {window}", "blksize 1468")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (root / "loader.bin").read_bytes()


def test_a_window_survives_the_block_number_rollover(service, root, tmp_path):
    out = tmp_path / "rollover.bin"
    proc = atftp(service.port, "rollover.bin", out, "windowsize 32", "blksize 8")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (root / "rollover.bin").read_bytes()


def test_the_log_line_names_the_window(service, tmp_path, caplog):
    with caplog.at_level("INFO", logger="pxe.tftp.server"):
        proc = atftp(service.port, "loader.bin", tmp_path / "x", "windowsize 16")
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 5
        while "window 16" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "tftp sent loader.bin" in caplog.text
    assert "bytes in" in caplog.text and ", window 16" in caplog.text


def test_a_client_without_the_option_keeps_lock_step(service, root, tmp_path):
    out = tmp_path / "loader.bin"
    proc = atftp(service.port, "loader.bin", out, "blksize 1468", trace=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (root / "loader.bin").read_bytes()
    assert "windowsize" not in proc.stdout + proc.stderr


# DATA only (the opcode at offset 64 bits of the UDP header): atftp gives up when ACK 0 is lost
# and the OACK comes again ("unexpected OACK"), a limit of that client, not of the window.
LOSS = """
table inet lossy {
  chain input {
    type filter hook input priority 0;
    meta l4proto udp @th,64,16 3 numgen random mod 100 < 3 counter drop
  }
}
"""


@pytest.fixture
def lossy_namespace() -> Iterator[str]:
    """A namespace whose loopback drops 3% of DATA packets (nftables, in the kernel)."""
    ns = f"tftpw{os.getpid() % 100000}"
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=LOSS)
        yield ns
    finally:
        run(["ip", "netns", "del", ns], check=False)


def dropped(ns: str) -> int:
    listing = run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "lossy"]).stdout
    return int(listing.split("counter packets ", 1)[1].split()[0])


def test_lost_blocks_inside_a_window_are_sent_again(root, tmp_path, lossy_namespace):
    service = in_netns(lossy_namespace, lambda: start_service(root))
    try:
        out = tmp_path / "loader.bin"
        proc = atftp(service.port, "loader.bin", out, "windowsize 16", "blksize 1468",
                     netns=lossy_namespace)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == (root / "loader.bin").read_bytes()
    finally:
        service.stop()
    # The client may leave before the server hears its last ACK (lost too): then the server
    # counts a failure after the whole file, as tftpd-hpa would.
    assert service.counters.transfers + service.counters.failed == 1
    assert service.counters.crashed == 0
    assert dropped(lossy_namespace) > 5, "the link lost too little to test resends"
