"""Secure Boot really on: the installer boots through Debian's signed chain on firmware that
enforces Secure Boot, refuses before it writes anything, and the server hears why.

The firmware is OVMF's Secure Boot build with Microsoft's keys enrolled (``OVMF_CODE_4M.ms.fd``
with a copy of ``OVMF_VARS_4M.ms.fd``, SMM on, as that build requires). It boots a disk whose EFI
system partition holds Debian's signed shim, Debian's signed GRUB and the installer boot image's
kernel and initramfs (``support.shim_disk``): firmware checks shim against Microsoft's CA, shim
checks GRUB against Debian's, GRUB has shim check the kernel, and the kernel checks every module
it loads. The kernel arguments are the ones the real server hands this host's network boot (its
answer-file URL with an install token), so the installer fetches its answer file from a real
``xcp-provision serve`` and reports to it, over QEMU's user network (the guest's 10.0.2.2 is the
host's loopback). The host's network boot itself is not in the chain: Debian's iPXE is not
signed, which is why our UEFI network boot needs Secure Boot off in the first place.

The disk the answer file names (``sda``, the server's default) is attached on the machine's
AHCI controller, and it holds a GPT from an earlier life; its bytes are hashed before and after.
One boot (about 40 s of TCG) serves every test of the refusal; the control boots the same disk
on OVMF without Secure Boot, where the install goes through (about 45 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from support.loopdisk import GIB, content_hash, sparse_image
from support.serve import free_port, serve_process
from support.shim_disk import KERNEL, build_shim_disk, missing_loaders

from common.runner import run, start
from images.bootimage.build import InstallerImage
from installer.bootmode import SecureBootError
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.tokens import create_api_token
from tests.images.vm import stop_vm

pytestmark = [pytest.mark.root, pytest.mark.slow]

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
MAC = "52:54:00:5b:00:01"
GUEST_HOST = "10.0.2.2"  # QEMU user networking: the host's loopback as the guest sees it
BOOT_SECONDS = 300
SENTENCE = str(SecureBootError())
_CRLF = re.compile(r"\r+\n")


@dataclass(frozen=True)
class Boot:
    """What one boot left: the console, the server's view, the target disk's hashes."""

    console: str
    kernel_args: str
    host: dict[str, Any]
    events: list[dict[str, Any]]
    dashboard: str
    target_before: str
    target_after: str


def _api_token(data: Path) -> str:
    database = Database(Settings(data_dir=data).database)
    database.migrate()
    with database.scope() as session:
        token = create_api_token(session, "secure-boot test")
    database.dispose()
    return token


def _call(base: str, path: str, token: str | None = None, body: Any = None) -> str:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def _installer_args(script: str) -> str:
    """The kernel arguments of the server's iPXE script, for GRUB instead of iPXE: without
    ``initrd=`` (GRUB hands the initrd over itself) and powering off at the end, so the run
    ends with the VM."""
    line = next(w for w in script.splitlines() if w.startswith("kernel "))
    words = line.removesuffix("|| goto failed").split()[2:]
    assert any(w.startswith("answerfile=") for w in words), script
    kept = [w for w in words if not w.startswith(("initrd=", "atexit="))]
    return " ".join([*kept, "atexit=poweroff"])


def _dashboard_host_page(base: str, token: str, host_id: int) -> str:
    """The host's dashboard page, signed in through the login form as a person is."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    form = opener.open(f"{base}/ui/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
    body = urllib.parse.urlencode({"csrf": csrf, "token": token}).encode()
    opener.open(f"{base}/ui/login", data=body, timeout=30).read()
    return opener.open(f"{base}/ui/hosts/{host_id}", timeout=30).read().decode()


def _used_disk(path: Path) -> Path:
    """A disk from an earlier life: a GPT with one partition; refusing must leave it so."""
    sparse_image(path, 64 * GIB)
    run(["sgdisk", "--new=1:2048:+1G", "--change-name=1:old data", path])
    return path


def _qemu(code: Path, efi_vars: Path, boot_disk: Path, target: Path, serial: Path) -> list[str]:
    return [
        "timeout", "--signal=KILL", str(BOOT_SECONDS + 5),
        "qemu-system-x86_64", "-name", "secure-boot-installer",
        "-machine", "q35,smm=on", "-accel", "tcg", "-cpu", "qemu64", "-m", "1536",
        "-nodefaults", "-nographic", "-monitor", "none", "-serial", f"file:{serial}",
        "-no-reboot",
        # The Secure Boot build keeps its variables in SMM: only SMM code may write the flash.
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={efi_vars}",
        "-drive", f"file={boot_disk},format=raw,if=none,id=boot,readonly=on",
        "-device", "virtio-blk-pci,drive=boot,bootindex=0",
        # q35's own AHCI controller: the installer sees this disk as sda.
        "-drive", f"file={target},format=raw,if=none,id=target",
        "-device", "ide-hd,drive=target,bus=ide.0",
        "-netdev", "user,id=net0",
        "-device", f"virtio-net-pci,netdev=net0,mac={MAC},romfile=",
    ]  # fmt: skip


def _run_vm(argv: list[str], serial: Path) -> str:
    proc = start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE)  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=BOOT_SECONDS + 15)
    except subprocess.TimeoutExpired:
        stderr = b""
    finally:
        stop_vm(proc)
    console = _CRLF.sub("\n", serial.read_text(errors="replace")) if serial.exists() else ""
    if proc.returncode != 0:
        console += f"\n[QEMU exited with {proc.returncode}: {stderr.decode(errors='replace')}]"
    return console


@dataclass(frozen=True)
class Firmware:
    """OVMF's code and the variable store each run gets a copy of."""

    code: Path
    variables: Path


SECURE_BOOT = Firmware(OVMF_CODE, OVMF_VARS)
# The same OVMF without Secure Boot: the control, on which the same boot must install.
NO_SECURE_BOOT = Firmware(Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
                          Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))  # fmt: skip


def _boot_once(image: InstallerImage, firmware: Firmware, work: Path) -> Boot:
    """A host added to a real server, its network-boot arguments on a shim disk, one boot of
    that disk with the used disk as sda, and what the server and the disk show afterwards."""
    missing = [*missing_loaders(), *(p for p in (firmware.code, firmware.variables)
                                     if not p.is_file())]  # fmt: skip
    if missing:
        pytest.skip(f"{', '.join(map(str, missing))} missing: scripts/test-packages.txt "
                    "names shim-signed, grub-efi-amd64-signed and ovmf")  # fmt: skip
    data = work / "data"
    data.mkdir()
    token = _api_token(data)
    port = free_port()
    env = {
        # The URLs in the boot script and the answer file are the ones the guest can reach.
        "XCP_PROVISION_PUBLIC_URL": f"http://{GUEST_HOST}:{port}",
        # The installer's console is the serial port alone: the VM has no screen.
        "XCP_PROVISION_KERNEL_ARGS": "console=ttyS0,115200",
    }
    serve_args = ("--demo", "--tftp-port", "0", "--no-dhcp", "--workers", "1")
    boot_disk, target = work / "shim-boot.img", work / "target.img"
    try:
        with serve_process(data, *serve_args, http_port=port, env=env) as (base, _proc):
            new_host = {"mac": MAC, "hostname": "sb-host", "profile": "demo"}
            ref = json.loads(_call(base, "/api/v1/hosts", token, new_host))["id"]
            kernel_args = _installer_args(_call(base, f"/boot/ipxe?mac={MAC}"))
            build_shim_disk(boot_disk, image.kernel, image.initrd, kernel_args)
            _used_disk(target)
            efi_vars = work / firmware.variables.name
            shutil.copyfile(firmware.variables, efi_vars)
            before = content_hash(target)
            serial = work / "console.log"
            argv = _qemu(firmware.code, efi_vars, boot_disk, target, serial)
            console = _run_vm(argv, serial)
            after = content_hash(target)
            host = json.loads(_call(base, f"/api/v1/hosts/{ref}", token))
            events = json.loads(_call(base, f"/api/v1/hosts/{ref}/events", token))["events"]
            dashboard = _dashboard_host_page(base, token, ref)
    finally:
        for disk in (boot_disk, target):
            disk.unlink(missing_ok=True)
    return Boot(console, kernel_args, host, events, dashboard, before, after)


@pytest.fixture(scope="module")
def boot(installer_image: InstallerImage, tmp_path_factory: pytest.TempPathFactory) -> Boot:
    return _boot_once(installer_image, SECURE_BOOT, tmp_path_factory.mktemp("secure-boot"))


@pytest.fixture(scope="module")
def control(installer_image: InstallerImage, tmp_path_factory: pytest.TempPathFactory) -> Boot:
    return _boot_once(installer_image, NO_SECURE_BOOT, tmp_path_factory.mktemp("no-secure-boot"))


def test_the_firmware_enforces_secure_boot_with_microsofts_keys(boot: Boot) -> None:
    """The kernel's EFI stub and the kernel itself read the firmware's state, and the kernel
    locks itself down because of it. The firmware's db holds Microsoft's CAs and nothing of
    Debian's: Debian's CA reached the kernel through shim's MOK table, so shim ran."""
    console = boot.console
    assert "EFI stub: UEFI Secure Boot is enabled." in console, console[-6000:]
    assert "secureboot: Secure boot enabled" in console
    assert "Kernel is locked down from EFI Secure Boot; see man kernel_lockdown.7" in console
    db = re.findall(r"integrity: Loading X\.509 certificate: UEFI:db\n.*'([^':\n]+):", console)
    assert db == ["Microsoft Windows Production PCA 2011", "Microsoft Corporation UEFI CA 2011"]
    mok = r"UEFI:MokListRT \(MOKvar table\)\n.*Loaded X\.509 cert 'Debian Secure Boot CA:"
    assert re.search(mok, console)


def test_the_installer_came_up_through_shim_and_grub(boot: Boot) -> None:
    """GRUB's own lines, then our kernel with the server's arguments on its command line, then
    our init with the network up, and the installer."""
    console = boot.console
    marks = [
        "shim-disk: GRUB loading the kernel",
        "shim-disk: GRUB loading the initrd",
        "Linux version 6.1",
        f"Command line: BOOT_IMAGE={KERNEL} {boot.kernel_args}\n",
        # virtio_net is a module: it loaded under lockdown, so the image's modules are signed.
        "xcp-installer: network: eth0 ",
        "xcp-installer: running",
    ]
    places = [console.find(mark) for mark in marks]
    assert -1 not in places and places == sorted(places), dict(zip(marks, places, strict=True))
    assert re.search(r"xcp-installer: network: eth0 +UP +10\.0\.2\.15/24", console)


def test_the_installer_refuses_with_its_sentence(boot: Boot) -> None:
    assert f"refused: {SENTENCE}" in boot.console, boot.console[-6000:]
    assert "xcp-install exited with status 2" in boot.console
    assert "xcp-installer: powering off" in boot.console


def test_nothing_was_written_to_the_disk_the_answer_file_names(boot: Boot) -> None:
    assert boot.target_after == boot.target_before


def test_the_server_marks_the_host_failed_with_the_sentence(boot: Boot) -> None:
    assert (boot.host["state"], boot.host["state_reason"]) == ("failed", SENTENCE)
    assert boot.host["install_address"] == "127.0.0.1"  # the guest, through QEMU's NAT
    kinds = [(e["kind"], e["step"]) for e in boot.events]
    assert ("progress", "prepare") in kinds and ("failed", "") in kinds
    assert not any(e["kind"] == "progress" and e["step"] != "prepare" for e in boot.events)
    failed = [e for e in boot.events if e["kind"] == "failed"]
    assert [e["message"] for e in failed] == [SENTENCE]


def test_the_dashboard_shows_the_sentence(boot: Boot) -> None:
    text = " ".join(re.sub(r"<[^>]+>", " ", boot.dashboard).split())
    assert "Secure Boot is on in this host" in text
    assert "turn Secure Boot off in the firmware setup" in text


def test_with_secure_boot_off_the_same_boot_installs_onto_that_disk(control: Boot) -> None:
    """The control: the same chain, server and disk on OVMF without Secure Boot. The install
    goes through and writes the disk, so the refusal above is the firmware's doing and an
    unchanged disk there means something."""
    assert "secureboot: Secure boot disabled" in control.console, control.console[-6000:]
    assert "xcp-install exited with status 0" in control.console
    assert control.target_after != control.target_before
    assert control.host["state"] == "installed"
    assert SENTENCE not in control.console
