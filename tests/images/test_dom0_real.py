"""The real dom0 image: built through the cache, inspected, then booted as PV dom0 under Xen.

The boot is the proof that matters: Xen 4.17 (from the same build cache) starts the image's
kernel and initrd under QEMU TCG, the initrd finds the root filesystem by LABEL on an ext3 disk,
systemd comes up and a getty prints a login prompt on hvc0, which Xen relays to the serial log.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dom0 import build, layout
from hypervisor import fetch
from hypervisor.cache import BuildCache, default_cache_dir
from installer.runner import run, start
from tests.images.vm import stop_vm

BOOT_TIMEOUT = 420
ROOT_LABEL = "root-xcptst"


@pytest.fixture(scope="module")
def dom0_image() -> build.Dom0Image:
    image, _ = build.build_dom0(BuildCache(default_cache_dir()))
    return image


@pytest.fixture(scope="module")
def dom0_tree(dom0_image: build.Dom0Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dom0") / "root"
    root.mkdir()
    run(["tar", "--extract", "--zstd", "--numeric-owner", "-f", dom0_image.rootfs, "-C", root])
    return root


@pytest.mark.slow
def test_dom0_image_contents(dom0_image: build.Dom0Image, dom0_tree: Path) -> None:
    root = dom0_tree
    assert dom0_image.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage
    assert (root / "boot" / f"vmlinuz-{dom0_image.kernel_version}").is_file()
    assert (root / "boot" / f"initrd.img-{dom0_image.kernel_version}").is_file()
    assert list((root / "boot").glob("xen-4.17-amd64.gz"))
    for tool in ("usr/sbin/xl", "usr/sbin/sshd", "usr/bin/python3", "usr/sbin/ifup", "sbin/init"):
        assert (root / tool).exists(), tool
    assert (root / "sbin" / "dhclient").exists()
    assert (root / layout.UNIT_WANTS.lstrip("/")).is_symlink()
    assert (root / layout.AGENT.lstrip("/")).read_bytes() == (
        Path(build.__file__).parent / "firstboot" / "agent.py"
    ).read_bytes()
    assert (root / layout.HVC0_GETTY.lstrip("/")).is_symlink()
    assert (root / layout.SERIAL_GETTY_UNIT.lstrip("/")).is_file()
    assert not list((root / "etc" / "ssh").glob("ssh_host_*"))
    assert (root / "etc" / "machine-id").read_text() == ""
    assert (root / layout.RELEASE_FILE.lstrip("/")).read_text().strip() == dom0_image.version
    assert "source /etc/network/interfaces.d/*" in (root / "etc/network/interfaces").read_text()
    assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
    # The agent runs under the image's own python3, standard library only.
    run(["chroot", root, "/usr/bin/python3", layout.AGENT, "--help"])


@pytest.mark.slow
def test_dom0_boots_under_xen_to_a_login_prompt_on_hvc0(
    dom0_image: build.Dom0Image, dom0_tree: Path, tmp_path: Path
) -> None:
    xen, _ = fetch.fetch_xen(BuildCache(default_cache_dir()))
    xen_elf = tmp_path / "xen"
    xen_elf.write_bytes(gzip.decompress(xen.path.read_bytes()))
    (dom0_tree / "etc/fstab").write_text(f"LABEL={ROOT_LABEL} / ext3 errors=remount-ro 0 1\n")
    (dom0_tree / "etc/hostname").write_text("dom0-boot-test\n")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as fh:
        fh.truncate(3 << 30)
    run(["mkfs.ext3", "-q", "-F", "-L", ROOT_LABEL, "-d", dom0_tree, disk], timeout=600)
    shutil.copyfile(dom0_image.kernel, tmp_path / "vmlinuz")
    shutil.copyfile(dom0_image.initrd, tmp_path / "initrd.img")
    serial = tmp_path / "serial.log"
    modules = (
        f"{tmp_path / 'vmlinuz'} root=LABEL={ROOT_LABEL} ro console=hvc0,{tmp_path}/initrd.img"
    )
    proc = start(
        [
            "timeout", "--signal=KILL", str(BOOT_TIMEOUT + 30),
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", "2048",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-net", "none",
            "-kernel", xen_elf,
            "-append", "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1",
            "-initrd", modules,
            "-drive", f"file={disk},format=raw,if=ide,cache=unsafe",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if "dom0-boot-test login:" in text:
                break
            time.sleep(2)
    finally:
        stop_vm(proc)
    assert "Xen version 4.17" in text, text[-3000:]
    assert "dom0-boot-test login:" in text, text[-3000:]
