"""The installed disk boots: firmware, then our GRUB, then our menu, then our xen.gz.

QEMU (TCG) boots the disk the installer wrote, with SeaBIOS for BIOS and OVMF for UEFI (no NVRAM
entry, so OVMF must find the removable-path loader EFI/BOOT/BOOTX64.EFI). The test release's
hypervisor is a gzip'd placeholder, so GRUB reaching it and saying "no multiboot header found"
proves the whole chain: boot code, core image, root found by label, grub.cfg, multiboot2 + gzio.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from support import small_release

from answerfiles.parse import parse_answerfile
from common import release, runner
from hypervisor.grub import HostConsole
from images.cache import BuildCache, default_cache_dir
from images.xen import fetch_xen
from installer import install
from installer.plan import BootMode

pytestmark = [pytest.mark.root, pytest.mark.slow]
GIB = 1 << 30
OVMF = Path("/usr/share/ovmf/OVMF.fd")
REACHED_XEN = "no multiboot header found"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _installed(tmp_path: Path, mode: BootMode, *, real_xen: bool = False) -> Path:
    small_release.build(tmp_path / "release")
    if real_xen:
        _swap_in_debian_xen(tmp_path / "release")
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    xml = (
        '<installation><primary-disk>sda</primary-disk>'
        f'<source type="url">file://{tmp_path}/release</source>'
        '<admin-interface name="eth0" proto="dhcp"/></installation>'
    )
    install.install(parse_answerfile(xml, "boot.xml").answers, target=str(image), boot_mode=mode,
                    host_console=HostConsole.BOTH)
    return image


def _swap_in_debian_xen(rel: Path) -> None:
    """Debian's real xen.gz (through the image builders' cache) in place of the placeholder."""
    xen, _fetched = fetch_xen(BuildCache(default_cache_dir()))
    (rel / f"xen-{small_release.XEN_VERSION}.gz").write_bytes(xen.path.read_bytes())
    old = release.load(rel)
    artefacts = tuple(release.describe(rel, a.kind, a.path, a.version) for a in old.artefacts)
    release.save(rel, release.Manifest(old.name, old.version, old.created, artefacts))


def _boot(
    image: Path, serial: Path, firmware: list[str], until: str = REACHED_XEN, timeout: float = 240
) -> str:
    proc = runner.start(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-display", "none",
         "-monitor", "none", "-serial", f"file:{serial}", "-net", "none", "-no-reboot",
         *firmware, "-drive", f"file={image},format=raw,if=ide"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if serial.exists() and until in serial.read_text(errors="replace"):
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    return ANSI.sub(" ", serial.read_text(errors="replace"))


def _assert_menu_and_xen(log: str) -> None:
    for title in ("XCP-provision (Serial)", "XCP-provision in Safe Mode",
                  "XCP-provision fallback (Xen 4.17)"):
        assert title in log
    assert "Booting `XCP-provision'" in log
    assert REACHED_XEN in log


def test_bios_disk_boots_into_our_grub_menu(tmp_path: Path) -> None:
    image = _installed(tmp_path, BootMode.BIOS)
    _assert_menu_and_xen(_boot(image, tmp_path / "serial.log", []))


def test_uefi_disk_boots_through_the_fallback_loader(tmp_path: Path) -> None:
    image = _installed(tmp_path, BootMode.UEFI)
    _assert_menu_and_xen(_boot(image, tmp_path / "serial.log", ["-bios", str(OVMF)]))


@pytest.mark.parametrize("mode", [BootMode.BIOS, BootMode.UEFI])
def test_real_xen_writes_to_the_serial_port_from_the_default_entry(
    tmp_path: Path, mode: BootMode
) -> None:
    """With no console setting the default entry sends Xen to COM1 and VGA: Debian's Xen,
    started by our GRUB, echoes the command line we built on the serial port. dom0 is a
    placeholder, so Xen stops at building it, which is where this test stops looking."""
    image = _installed(tmp_path, mode, real_xen=True)
    firmware = ["-bios", str(OVMF)] if mode is BootMode.UEFI else []
    log = _boot(image, tmp_path / "serial.log", ["-cpu", "qemu64", "-m", "1024", *firmware],
                until="Could not construct domain 0")
    command_line = next(line for line in log.splitlines() if "(XEN) Command line:" in line)
    assert "Booting `XCP-provision'" in log  # the default entry, not the serial one
    assert "com1=115200,8n1 console=com1,vga" in command_line
    assert "dom0_mem=" in command_line and ",max:" in command_line
    assert "dom0_max_vcpus=1-" in command_line
    assert "(XEN) Xen version 4.17" in log
    assert "Could not construct domain 0" in log
