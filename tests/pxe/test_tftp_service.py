"""The wrapped tftpy service against real TFTP clients: curl and tftp-hpa, on loopback."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxe.boot.plan import BootAction, BootPlan
from pxe.boot.render.grub import render_grub
from pxe.boot.render.ipxe import render_ipxe_script
from pxe.boot.render.pxelinux import render_pxelinux
from pxe.tftp import server as tftp_server
from pxe.tftp.files import GeneratedFiles
from pxe.tftp.loaders import IPXE_DIR, prepare_tftp_root
from pxe.tftp.server import TftpService

MAC = "52:54:00:12:34:56"
INSTALL = BootPlan(
    BootAction.INSTALL,
    kernel_url="http://10.0.0.1:8080/releases/8.3/vmlinuz",
    initrd_urls=("http://10.0.0.1:8080/releases/8.3/install.img",),
    cmdline="console=ttyS0 answerfile=http://10.0.0.1:8080/answers/52-54-00-12-34-56.xml",
    reason="assigned to profile lab",
)
BASE_URL = "http://10.0.0.1:8080"


def plans(mac: str, client_ip: str) -> BootPlan:
    """Stands in for the inventory's decision: one known host, everyone else waits."""
    if mac == MAC:
        return INSTALL
    return BootPlan(BootAction.WAIT, retry_seconds=20, reason=f"unknown host {mac}")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    root = prepare_tftp_root(data)
    (root / "big.bin").write_bytes(random.Random(7).randbytes(3 * 1024 * 1024 + 17))
    (root / "rollover.bin").write_bytes(random.Random(8).randbytes(75_000 * 8 + 3))
    secret = data / "secret.txt"
    secret.write_text("outside the root\n")
    (root / "escape").symlink_to(secret)
    (root / "inside").symlink_to(root / "undionly.kpxe")
    return root


@pytest.fixture(scope="module")
def service(root: Path) -> Iterator[TftpService]:
    service = TftpService(root, GeneratedFiles(plans, BASE_URL), host="127.0.0.1", port=0)
    service.start()
    yield service
    service.stop()


def curl(service: TftpService, path: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--path-as-is",
            "--max-time",
            "30",
            *args,
            "-o",
            str(out),
            f"tftp://127.0.0.1:{service.port}/{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def tftp_hpa(service: TftpService, command: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["tftp", "-m", "binary", "127.0.0.1", str(service.port), "-c", *command.split()],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )
    return proc.stdout + proc.stderr


def wait_for(predicate, seconds: float = 10) -> bool:
    """The server counts a transfer when the client's last ACK arrives, just after curl exits."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["undionly.kpxe", "ipxe.efi", "snponly.efi"])
@pytest.mark.parametrize("blksize", [None, "8", "1468", "8192", "65464"])
def test_curl_fetches_loaders_byte_exact(service, tmp_path, name, blksize):
    args = ["--tftp-blksize", blksize] if blksize else []
    proc = curl(service, name, tmp_path / name, *args)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / name).read_bytes() == (IPXE_DIR / name).read_bytes()


def test_the_loop_and_the_pumps_run_at_the_priority_of_the_threads_around_it(service):
    """Benches compare us with servers at their own priority: ours takes no higher one."""
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert os.getpriority(os.PRIO_PROCESS, service._thread.native_id) == ours
    assert len(service.pumps.pids) == 2
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in service.pumps.pids] == [ours, ours]


def test_loaders_in_root_are_debian_copies(root):
    for name in ("undionly.kpxe", "ipxe.efi", "snponly.efi"):
        assert (root / name).read_bytes() == (IPXE_DIR / name).read_bytes()
        assert not (root / name).is_symlink()
    assert (root / "grub" / "x86_64-efi" / "core.efi").stat().st_size > 100_000
    assert (root / "lpxelinux.0").is_file()


def test_tftp_hpa_fetches_loader_and_big_file(service, root, tmp_path):
    tftp_hpa(service, "get undionly.kpxe got.kpxe", tmp_path)
    assert (tmp_path / "got.kpxe").read_bytes() == (IPXE_DIR / "undionly.kpxe").read_bytes()
    tftp_hpa(service, "get big.bin big.bin", tmp_path)
    assert (tmp_path / "big.bin").read_bytes() == (root / "big.bin").read_bytes()


def test_block_number_rolls_over(service, root, tmp_path):
    """75,000 blocks of 8 bytes: block 65535 is followed by block 0, as curl and tftp-hpa expect."""
    proc = curl(service, "rollover.bin", tmp_path / "r", "--tftp-blksize", "8")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r").read_bytes() == (root / "rollover.bin").read_bytes()


def test_per_host_files_rendered_from_the_plan(service, tmp_path):
    dashed = MAC.replace(":", "-")
    expected = {
        f"pxelinux.cfg/01-{dashed}": render_pxelinux(INSTALL),
        f"grub/grub.cfg-{dashed}": render_grub(INSTALL, f"grub/grub.cfg-{dashed}"),
        f"grub/grub.cfg-01-{dashed}": render_grub(INSTALL, f"grub/grub.cfg-01-{dashed}"),
        "boot.ipxe": render_ipxe_script(BASE_URL),
    }
    for i, (path, text) in enumerate(expected.items()):
        proc = curl(service, path, tmp_path / f"curl{i}")
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / f"curl{i}").read_text() == text
        tftp_hpa(service, f"get {path} hpa{i}", tmp_path)
        assert (tmp_path / f"hpa{i}").read_text() == text
    assert "vmlinuz" in expected[f"pxelinux.cfg/01-{dashed}"]


def test_unknown_host_gets_a_wait_config(service, tmp_path):
    assert curl(service, "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", tmp_path / "w").returncode == 0
    text = (tmp_path / "w").read_text()
    assert "unknown host aa:bb:cc:dd:ee:ff" in text
    assert "reboot.c32" in text


def rrq(port: int, filename: str, options: dict[str, str]) -> tuple[bytes, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    packet = b"\x00\x01" + filename.encode() + b"\x00octet\x00"
    for key, value in options.items():
        packet += key.encode() + b"\x00" + value.encode() + b"\x00"
    sock.sendto(packet, ("127.0.0.1", port))
    reply, peer = sock.recvfrom(70000)
    sock.connect(peer)
    return reply, sock


def test_tsize_and_blksize_negotiated(service, root):
    reply, sock = rrq(service.port, "ipxe.efi", {"tsize": "0", "blksize": "1428"})
    with sock:
        assert reply[:2] == b"\x00\x06"  # OACK
        fields = reply[2:].split(b"\x00")[:-1]
        options = dict(zip(fields[::2], fields[1::2], strict=True))
        assert options == {
            b"tsize": str((root / "ipxe.efi").stat().st_size).encode(),
            b"blksize": b"1428",
        }
        sock.send(b"\x00\x04\x00\x00")  # ACK 0 starts the data
        data = sock.recv(70000)
        assert data[:4] == b"\x00\x03\x00\x01"
        assert len(data) == 4 + 1428
        sock.send(b"\x00\x05\x00\x00stop\x00")  # ERR: the client gives up


@contextlib.contextmanager
def small_file_served(tmp_path: Path, **options: object) -> Iterator[TftpService]:
    """A service of its own for ``f.bin`` (2,048 bytes: four lock-step blocks and an empty one)."""
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 8)
    service = TftpService(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0, **options)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def test_unacknowledged_block_is_resent_and_a_duplicate_ack_is_not_answered(tmp_path):
    with small_file_served(tmp_path, timeout=0.5) as service:
        first, sock = rrq(service.port, "f.bin", {})
        with sock:
            assert first[:4] == b"\x00\x03\x00\x01"
            sock.send(b"\x00\x04\x00\x01")
            second = sock.recv(600)
            assert second[:4] == b"\x00\x03\x00\x02"
            # The same ACK again: answering it would send every later block twice (RFC 1350's
            # Sorcerer's Apprentice).
            sock.send(b"\x00\x04\x00\x01")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(600)
            sock.settimeout(5)
            assert sock.recv(600) == second  # no new ACK: the same block again after the timeout
            sock.send(b"\x00\x04\x00\x02")
            assert sock.recv(600)[:4] == b"\x00\x03\x00\x03"
            sock.send(b"\x00\x05\x00\x00stop\x00")


def serving_pid(client: socket.socket) -> int:
    """The process holding the server's end of a download, as ``ss`` sees it."""
    port = client.getsockname()[1]
    listing = subprocess.run(["ss", "-Hunp", "dst", f"127.0.0.1:{port}"], capture_output=True,
                             text=True, check=True).stdout
    [pid] = {int(p) for p in re.findall(r"pid=(\d+)", listing)}
    return pid


def test_a_pump_that_dies_fails_its_downloads_and_is_replaced(tmp_path):
    with small_file_served(tmp_path, pumps=1) as service:
        first, sock = rrq(service.port, "f.bin", {})
        with sock:
            assert first[:4] == b"\x00\x03\x00\x01"
            [pid] = service.pumps.pids
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda: service.counters.failed == 1)
        assert wait_for(lambda: service.pumps.pids not in ([], [pid]), seconds=15)
        assert curl(service, "f.bin", tmp_path / "out").returncode == 0
        assert (tmp_path / "out").read_bytes() == (tmp_path / "f.bin").read_bytes()
        assert wait_for(lambda: service.counters.transfers == 1)
    assert service.pumps.pids == []


def test_downloads_at_once_spread_over_the_pumps(tmp_path):
    """The least busy pump takes each download: two running at once run in two processes."""
    with small_file_served(tmp_path) as service:
        first, one = rrq(service.port, "f.bin", {})
        second, two = rrq(service.port, "f.bin", {})
        with one, two:
            assert first[:4] == second[:4] == b"\x00\x03\x00\x01"
            assert {serving_pid(one), serving_pid(two)} == set(service.pumps.pids)
            for sock in (one, two):
                sock.send(b"\x00\x05\x00\x00stop\x00")
        assert wait_for(lambda: service.counters.failed == 2)


def test_blksize_clamped_to_rfc_maximum(service):
    reply, sock = rrq(service.port, "ipxe.efi", {"blksize": "65536"})
    with sock:
        assert reply == b"\x00\x06blksize\x0065464\x00"
        sock.send(b"\x00\x05\x00\x00stop\x00")


def test_traversal_refused(service, root, tmp_path):
    before = service.counters.refused
    proc = curl(service, "../../../../etc/passwd", tmp_path / "p")
    assert proc.returncode != 0
    out = tftp_hpa(service, "get ../../../../etc/passwd p2", tmp_path)
    assert "Error code" in out
    assert (tmp_path / "p2").read_bytes() == b""
    assert wait_for(lambda: service.counters.refused == before + 2)


def test_symlink_escape_refused_but_inside_link_served(service, tmp_path):
    proc = curl(service, "escape", tmp_path / "e")
    assert proc.returncode != 0
    assert "Error code 2" in tftp_hpa(service, "get escape e2", tmp_path)
    assert (tmp_path / "e2").read_bytes() == b""
    assert curl(service, "inside", tmp_path / "i").returncode == 0
    assert (tmp_path / "i").read_bytes() == (IPXE_DIR / "undionly.kpxe").read_bytes()


def test_a_directory_swapped_for_a_link_after_the_check_is_refused(tmp_path, monkeypatch):
    """The race a path check alone loses: ``sub`` is a directory when the path is resolved
    and a link out of the root when the file is opened. What was opened is checked too."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"not for TFTP clients")
    (root / "sub").symlink_to(outside)
    # As if resolved an instant before the swap: the path still looks inside the root.
    resolve = os.path.realpath
    monkeypatch.setattr(tftp_server.os.path, "realpath",
                        lambda path: path if "/sub/" in str(path) else resolve(path))
    service = TftpService(root, lambda _p, _c: None, host="127.0.0.1", port=0)
    service.start()
    try:
        assert "Error code 2" in tftp_hpa(service, "get sub/secret got", tmp_path)
        assert not (tmp_path / "got").exists() or (tmp_path / "got").read_bytes() == b""
        assert wait_for(lambda: service.counters.refused == 1)
    finally:
        service.stop()


def test_uploads_refused_and_nothing_lands(service, root, tmp_path):
    before = tree(root)
    payload = tmp_path / "upload.bin"
    payload.write_bytes(b"x" * 5000)
    proc = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-T",
            str(payload),
            f"tftp://127.0.0.1:{service.port}/uploaded.bin",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "Error code 2" in tftp_hpa(service, f"put {payload} uploaded2.bin", tmp_path)
    assert "Error code 2" in tftp_hpa(service, f"put {payload} undionly.kpxe", tmp_path)
    assert tree(root) == before
    assert (root / "undionly.kpxe").read_bytes() == (IPXE_DIR / "undionly.kpxe").read_bytes()


def garbage(rng: random.Random, i: int) -> bytes:
    """Random bytes, and mangled versions of every packet type, on the request port."""
    kinds = [
        lambda: rng.randbytes(rng.randint(0, 600)),
        lambda: bytes([0, rng.randint(0, 9)]) + rng.randbytes(rng.randint(0, 40)),
        lambda: b"\x00\x01" + rng.randbytes(20),  # RRQ without terminators
        lambda: b"\x00\x01undionly.kpxe\x00octet\x00blksize\x00abc\x00",
        lambda: b"\x00\x01undionly.kpxe\x00octet\x00blksize\x00",  # odd option count
        lambda: b"\x00\x01\xff\xfe\x00octet\x00",  # not ASCII
        lambda: b"\x00\x01nope-%d\x00octet\x00" % i,
        lambda: b"\x00\x04\x00\x01",  # ACK on the request port
        lambda: b"\x00\x05\x00\x01oops\x00",
        lambda: b"\x00\x06tsize\x000\x00",
        lambda: b"\x00\x03\x00\x01data",
        lambda: b"\x00",
        lambda: b"",
    ]
    return rng.choice(kinds)()


def test_barrage_of_malformed_datagrams_leaves_server_serving(service, tmp_path):
    rng = random.Random(1234)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    try:
        for i in range(12_000):
            senders[i % len(senders)].sendto(garbage(rng, i), ("127.0.0.1", service.port))
            if i % 250 == 249:
                time.sleep(0.005)  # let the server drain its socket buffer, so most are read
    finally:
        for sock in senders:
            sock.close()
    proc = curl(service, "undionly.kpxe", tmp_path / "after")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "after").read_bytes() == (IPXE_DIR / "undionly.kpxe").read_bytes()
    assert service.counters.malformed > 1000, service.counters
    assert service.counters.crashed == 0, service.counters


def test_failing_generator_fails_one_transfer_only(tmp_path):
    (tmp_path / "ok.txt").write_text("still here\n")

    def generated(path: str, _client: str) -> bytes | None:
        if path == "boom":
            raise RuntimeError("inventory exploded")
        return None

    service = TftpService(tmp_path, generated, host="127.0.0.1", port=0)
    service.start()
    try:
        assert curl(service, "boom", tmp_path / "b").returncode != 0
        assert curl(service, "ok.txt", tmp_path / "ok").returncode == 0
        assert (tmp_path / "ok").read_text() == "still here\n"
        assert service.counters.crashed == 1
        assert wait_for(lambda: service.counters.transfers == 1)
    finally:
        service.stop()


def test_slow_generator_does_not_stall_other_transfers(tmp_path):
    (tmp_path / "disk.bin").write_bytes(os.urandom(200_000))
    release = threading.Event()

    def generated(path: str, _client: str) -> bytes | None:
        if path == "slow.cfg":
            release.wait(30)  # an inventory lookup stuck behind a lock
            return b"finally\n"
        return None

    service = TftpService(tmp_path, generated, host="127.0.0.1", port=0)
    service.start()
    try:
        slow = subprocess.Popen(
            ["curl", "-sS", "--max-time", "60", "-o", str(tmp_path / "slow.out"),
             f"tftp://127.0.0.1:{service.port}/slow.cfg"])
        assert wait_for(lambda: len(service._by_client) == 1)
        assert curl(service, "disk.bin", tmp_path / "disk.out").returncode == 0
        assert (tmp_path / "disk.out").read_bytes() == (tmp_path / "disk.bin").read_bytes()
        assert slow.poll() is None  # still waiting for its generated file
        release.set()
        assert slow.wait(30) == 0
        assert (tmp_path / "slow.out").read_bytes() == b"finally\n"
    finally:
        release.set()
        service.stop()


class _LoopFaultOnce(TftpService):
    """Injects one failure into the event loop itself, as a bug there would."""

    faults = 1

    def _tick(self, channels):
        if self.faults:
            self.faults -= 1
            raise RuntimeError("injected loop fault")
        super()._tick(channels)


def test_supervisor_restarts_a_dead_loop(tmp_path):
    (tmp_path / "ok.txt").write_text("served after restart\n")
    service = _LoopFaultOnce(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0, timeout=0.4)
    service.start()
    try:
        assert wait_for(lambda: service.counters.crashed == 1)
        assert curl(service, "ok.txt", tmp_path / "ok").returncode == 0
        assert (tmp_path / "ok").read_text() == "served after restart\n"
        assert service.faults == 0
    finally:
        service.stop()
    assert not service._thread.is_alive()


def test_stop_releases_the_port(tmp_path):
    service = TftpService(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0)
    service.start()
    port = service.port
    service.stop()
    assert not service._thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_busy_port_fails_in_start(tmp_path):
    first = TftpService(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0)
    first.start()
    try:
        second = TftpService(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=first.port)
        with pytest.raises(OSError, match="in use"):
            second.start()
    finally:
        first.stop()


def test_transfer_counters_and_log_line(tmp_path, caplog):
    (tmp_path / "f.bin").write_bytes(os.urandom(1000))
    service = TftpService(tmp_path, lambda _p, _c: None, host="127.0.0.1", port=0)
    service.start()
    try:
        with caplog.at_level("INFO", logger="pxe.tftp.server"):
            assert curl(service, "f.bin", tmp_path / "out").returncode == 0
            assert curl(service, "f.bin", tmp_path / "out").returncode == 0
            assert wait_for(lambda: service.counters.transfers == 2)
    finally:
        service.stop()
    assert (service.counters.transfers, service.counters.bytes) == (2, 2000)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tftp sent")]
    assert len(lines) == 2
    assert "f.bin to 127.0.0.1:" in lines[0]
    assert "1000 bytes in" in lines[0]


def test_file_changed_on_disk_is_served_fresh(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    loader = root / "loader.bin"
    loader.write_bytes(b"A" * 70_000)
    service = TftpService(root, lambda _p, _c: None, host="127.0.0.1", port=0)
    service.start()

    def fetch() -> bytes:
        proc = curl(service, "loader.bin", tmp_path / "got")
        assert proc.returncode == 0, proc.stderr
        return (tmp_path / "got").read_bytes()

    try:
        assert fetch() == b"A" * 70_000
        with loader.open("r+b") as rewrite:  # same size, same inode
            rewrite.write(b"B" * 70_000)
        assert fetch() == b"B" * 70_000
        replacement = root / "loader.new"
        replacement.write_bytes(b"C" * 70_000)
        replacement.rename(loader)  # a new inode under the same name
        assert fetch() == b"C" * 70_000
        loader.unlink()
        assert curl(service, "loader.bin", tmp_path / "gone").returncode != 0
    finally:
        service.stop()


def test_tsize_of_a_generated_file(service):
    reply, sock = rrq(service.port, "boot.ipxe", {"tsize": "0"})
    with sock:
        assert reply[:2] == b"\x00\x06"  # OACK
        fields = reply[2:].split(b"\x00")[:-1]
        options = dict(zip(fields[::2], fields[1::2], strict=True))
        assert options[b"tsize"] == b"%d" % len(render_ipxe_script(BASE_URL).encode())
        sock.send(b"\x00\x05\x00\x00stop\x00")
