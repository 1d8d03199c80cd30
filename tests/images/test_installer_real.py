"""The real installer boot image: built through the cache, unpacked and inspected, then booted.

The boot runs Debian's kernel with our initramfs under QEMU TCG with user-mode networking:
QEMU's built-in DHCP server answers udhcpc, and the guest reaches an HTTP server of ours on the
host's loopback as 10.0.2.2. The answer file there is refused by xcp-install (it names no disk),
so the run proves /init end to end: drivers, network (DHCP or static from network_config=),
xcp-install reading answerfile= from the kernel command line, and atexit=poweroff.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.runner import run, start
from images.bootimage import build
from images.cache import BuildCache, default_cache_dir
from tests.images.vm import stop_vm

BOOT_TIMEOUT = 600
ANSWERFILE = b"""<?xml version="1.0"?>
<installation>
    <keymap>us</keymap>
</installation>
"""


@pytest.fixture(scope="module")
def installer_image() -> build.InstallerImage:
    image, _ = build.build_installer(BuildCache(default_cache_dir()))
    return image


@pytest.fixture(scope="module")
def initramfs(installer_image: build.InstallerImage, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("installer") / "root"
    root.mkdir()
    cpio = root.parent / "initrd.cpio"
    run(["zstd", "-q", "-d", "-f", installer_image.initrd, "-o", cpio])
    run(
        ["cpio", "--extract", "--quiet", "--make-directories", "--no-absolute-filenames",
         "--file", cpio],
        cwd=root,
    )  # fmt: skip
    cpio.unlink()
    return root


@pytest.mark.slow
def test_installer_image_contents(installer_image: build.InstallerImage, initramfs: Path) -> None:
    root = initramfs
    assert installer_image.kernel.read_bytes()[0x202:0x206] == b"HdrS"
    assert installer_image.initrd.read_bytes()[:4] == bytes.fromhex("28b52ffd")  # zstd
    assert (root / "init").stat().st_mode & 0o111
    assert (root / "init").read_text() == (Path(build.__file__).parent / "init").read_text()
    for tool in (
        "usr/local/bin/xcp-install", "usr/bin/python3", "usr/sbin/sgdisk", "usr/sbin/sfdisk",
        "usr/sbin/mkfs.ext4", "usr/sbin/mkfs.vfat", "usr/bin/mcopy", "usr/sbin/grub-install",
        "usr/bin/grub-mkimage", "usr/lib/grub/i386-pc/boot.img", "usr/sbin/blkid",
        "usr/bin/partx", "usr/sbin/wipefs", "usr/sbin/debugfs", "usr/bin/curl", "usr/bin/ip",
        "usr/bin/busybox", "usr/bin/zstd", "usr/bin/udevadm", "usr/sbin/modprobe", "usr/bin/gpgv",
        "usr/share/udhcpc/xcp-provision.script", "usr/share/zoneinfo/Europe/Paris",
    ):  # fmt: skip
        assert (root / tool).exists(), tool
    assert list((root / "usr/lib/grub/x86_64-efi").glob("*.mod"))
    modules = next((root / "usr/lib/modules").iterdir())
    dep = (modules / "modules.dep").read_text()
    for module in ("virtio_net", "e1000", "e1000e", "igb", "ahci", "virtio_blk", "sd_mod",
                   "nvme", "ext4", "8021q", "virtio_scsi"):  # fmt: skip
        assert f"/{module}.ko" in dep, module
    # What each driver needs is there too, or modprobe fails on unknown symbols (sd_mod and
    # nvme_core need t10-pi from block/, igb i2c-algo-bit, ixgbe xfrm_algo).
    present = {Path(line.split(":")[0]).name.split(".ko")[0].replace("-", "_")
               for line in dep.splitlines()}  # fmt: skip
    present |= {Path(line).name.split(".ko")[0].replace("-", "_")
                for line in (modules / "modules.builtin").read_text().splitlines()}  # fmt: skip
    for module in ("sd_mod", "nvme_core", "igb", "ixgbe", "ahci", "virtio_net", "usb_storage"):
        depends = run(["modinfo", "-b", root, "-k", modules.name, "-F", "depends", module])
        needed = {name.replace("-", "_") for name in depends.stdout.strip().split(",") if name}
        assert needed <= present, (module, needed - present)
    assert (root / "etc/systemd/network/99-default.link").readlink() == Path("/dev/null")
    assert "udhcpc" in run(["chroot", root, "busybox", "--list"]).stdout.split()
    run(["chroot", root, "/usr/bin/python3", "-c", build.IMPORT_CHECK])
    run(
        [
            "chroot",
            root,
            "/usr/bin/python3",
            "-c",
            "import parted, pyudev, urwid, zstandard, passlib",
        ]
    )
    assert "Usage" in run(["chroot", root, "/usr/local/bin/xcp-install", "--help"]).stdout


class _AnswerFiles(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(ANSWERFILE)))
        self.end_headers()
        self.wfile.write(ANSWERFILE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answer_server() -> Iterator[tuple[int, list[str]]]:
    handler = type("Handler", (_AnswerFiles,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("network_device", "network_config", "expect"),
    [
        # A NIC chosen by MAC, written in capitals as operators copy it from a label.
        ("52:54:00:AB:CD:EF", "dhcp", "10.0.2.15/24"),
        (
            "eth0",
            "static:ip=10.0.2.77;netmask=255.255.255.0;gateway=10.0.2.2;dns=10.0.2.3",
            "10.0.2.77/24",
        ),
    ],
)
def test_installer_boots_fetches_the_answer_file_and_powers_off(
    installer_image: build.InstallerImage,
    answer_server: tuple[int, list[str]],
    tmp_path: Path,
    network_device: str,
    network_config: str,
    expect: str,
) -> None:
    port, requests = answer_server
    serial = tmp_path / "serial.log"
    cmdline = (
        f"console=ttyS0 answerfile=http://10.0.2.2:{port}/answers/host1.xml "
        f"network_device={network_device} network_config={network_config} atexit=poweroff"
    )
    proc = start(
        [
            "timeout", "--signal=KILL", str(BOOT_TIMEOUT),
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", "1536",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-kernel", installer_image.kernel, "-initrd", installer_image.initrd,
            "-append", cmdline,
            "-netdev", "user,id=net0,restrict=off",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:ab:cd:ef",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        proc.wait(BOOT_TIMEOUT + 10)
    finally:
        stop_vm(proc)
    log = serial.read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    network = [line for line in log.splitlines() if "xcp-installer: network: eth0" in line]
    assert network, log[-3000:]
    assert expect in network[0], log[-3000:]
    assert "xcp-installer: running xcp-install" in log, log[-3000:]
    assert requests == ["/answers/host1.xml"], log[-3000:]
    assert "xcp-installer: xcp-install exited with status" in log
    assert "xcp-installer: powering off" in log


@pytest.mark.slow
def test_without_an_answer_file_the_interactive_installer_draws_on_the_serial_console(
    installer_image: build.InstallerImage, tmp_path: Path
) -> None:
    """XCP-ng's first screen is the keymap; a serial console (size 0x0) must still show it."""
    serial = tmp_path / "serial.log"
    proc = start(
        [
            "timeout", "--signal=KILL", str(BOOT_TIMEOUT),
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", "1536",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-kernel", installer_image.kernel, "-initrd", installer_image.initrd,
            "-append", "console=ttyS0 atexit=poweroff", "-net", "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    log = ""
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            log = serial.read_text(errors="replace") if serial.exists() else ""
            if "Keymap" in log.partition("running xcp-install --tui")[2]:
                break
            time.sleep(2)
    finally:
        stop_vm(proc)
    assert "xcp-installer: running xcp-install --tui" in log, log[-3000:]
    assert "Keymap" in log.partition("running xcp-install --tui")[2], log[-3000:]
    assert "exited with status" not in log
