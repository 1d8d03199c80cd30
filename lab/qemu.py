"""One lab VM: QEMU playing a bare-metal host that network-boots first, then boots its disk.

TCG with ``-cpu qemu64`` because that is what runs Xen and a PV dom0 on the test machine (KVM
guests triple-fault there, ``-cpu max`` crashes dom0). ``-boot order=c,once=n`` without
``-no-reboot``: the first boot asks the network, the installer's reboot then finds the disk, as a
real host with "network once" would. BIOS machines get Debian's iPXE option ROM; UEFI machines get
OVMF and an empty ``romfile=`` so the firmware's own PXE client asks for an x86-64 UEFI loader.
UEFI HTTP Boot machines get the 4 MiB OVMF as flash (code read-only, a copy of the variable store
per VM) with its PXE clients switched off through fw_cfg, so the firmware's network boot is HTTP
Boot over IPv4 from the start instead of after PXEv4 and PXEv6 have each timed out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import CommandError
from common.runner import run
from lab.errors import LabError
from lab.netns import LabNetwork
from lab.process import Background, bounded, launch

OVMF_CANDIDATES = (
    Path("/usr/share/ovmf/OVMF.fd"),
    Path("/usr/share/OVMF/OVMF.fd"),
    Path("/usr/share/qemu/OVMF.fd"),
)
OVMF_4M_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_4M_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# OVMF reads these fw_cfg switches at start: no PXE over IPv4 or IPv6; HTTP Boot stays on.
NO_PXE_FW_CFG = ("opt/org.tianocore/IPv4PXESupport", "opt/org.tianocore/IPv6PXESupport")
FIRMWARES = ("bios", "uefi", "uefi-http")
DISK_GIB = 60
MEMORY_MIB = 2048


@dataclass(frozen=True)
class BootOrder:
    """What the firmware boots first, said the way each firmware reads it: SeaBIOS by QEMU's
    ``-boot`` (``once=n``: the network for one boot, then the disk), OVMF by the devices'
    ``bootindex`` (it ignores ``-boot``)."""

    boot: str | None = "order=c,once=n"
    nic_index: int | None = None
    disk_index: int | None = None


# The plain lab's: SeaBIOS asks the network once; OVMF, with no order given, boots a blank disk's
# nothing and then the network, and once installed the disk's fallback loader.
NETWORK_ONCE = BootOrder()


@dataclass(frozen=True)
class VmSpec:
    name: str
    mac: str
    tap: str
    workdir: Path
    uefi: bool = False
    memory_mib: int = MEMORY_MIB
    cpus: int = 1
    disk_gib: int = DISK_GIB
    # virtio-blk shows up as /dev/vda in the guest; "sata" gives /dev/sda behind AHCI.
    disk_bus: str = "virtio"
    http_boot: bool = False  # UEFI HTTP Boot instead of the firmware's PXE (implies uefi)

    @property
    def firmware(self) -> str:
        if self.http_boot:
            return "uefi-http"
        return "uefi" if self.uefi else "bios"

    @property
    def efi_vars(self) -> Path:
        return self.workdir / f"{self.name}.efivars.fd"

    @property
    def disk(self) -> Path:
        return self.workdir / f"{self.name}.qcow2"

    @property
    def serial_log(self) -> Path:
        return self.workdir / f"{self.name}.serial.log"

    @property
    def qemu_log(self) -> Path:
        return self.workdir / f"{self.name}.qemu.log"


def ovmf_firmware() -> Path:
    for path in OVMF_CANDIDATES:
        if path.is_file():
            return path
    raise LabError("firmware", "no OVMF.fd found; install the Debian package ovmf")


def _firmware_args(spec: VmSpec) -> list[str]:
    if spec.http_boot:
        for path in (OVMF_4M_CODE, OVMF_4M_VARS):
            if not path.is_file():
                raise LabError("firmware", f"{path} is missing; install the Debian package ovmf")
        if not spec.efi_vars.exists():
            shutil.copyfile(OVMF_4M_VARS, spec.efi_vars)
        args = [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_4M_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={spec.efi_vars}",
        ]  # fmt: skip
        for name in NO_PXE_FW_CFG:
            args += ["-fw_cfg", f"name={name},string=no"]
        return args
    if spec.uefi:
        return ["-bios", str(ovmf_firmware())]
    return []


def mac_for(index: int, seed: int | None = None) -> str:
    """A locally administered MAC per VM, distinct between concurrent labs (pid as seed)."""
    seed = os.getpid() if seed is None else seed
    return f"52:54:00:{(seed >> 8) & 0xFF:02x}:{seed & 0xFF:02x}:{index & 0xFF:02x}"


def create_disk(spec: VmSpec, path: Path | None = None) -> Path:
    """A blank sparse qcow2 disk (the VM's first, or ``path``): 60 GiB seen by the guest, a few
    hundred KiB on the host."""
    path = path or spec.disk
    spec.workdir.mkdir(parents=True, exist_ok=True)
    try:
        run(["qemu-img", "create", "-q", "-f", "qcow2", path, f"{spec.disk_gib}G"])
    except CommandError as exc:
        raise LabError("disk", f"cannot create {path}: {exc}") from exc
    return path


def extra_disk(spec: VmSpec, number: int) -> Path:
    """Where the VM's disk ``number`` (2, 3...) lives, beside its first."""
    return spec.workdir / f"{spec.name}.disk{number}.qcow2"


def guest_disk_name(disk_bus: str, number: int) -> str:
    """How the guest's kernel names disk ``number`` (1: the first) on ``disk_bus``: vda,
    vdb... behind virtio-blk, sda, sdb... behind AHCI."""
    prefix = "vd" if disk_bus == "virtio" else "sd"
    return prefix + "abcdefgh"[number - 1]


def extra_disk_args(spec: VmSpec, number: int) -> list[str]:
    """QEMU arguments attaching disk ``number`` (2, 3...; made when absent) after the first, on
    the same bus, so the guest names it as :func:`guest_disk_name` says. Given to :func:`command` as
    ``extra``; left out, the VM boots without that disk, as with the disk pulled.

    Zeros written to it stay holes (``detect-zeroes``): a RAID1's first resync copies the whole
    first disk, mostly never written, onto it, which would otherwise allocate all 60 GiB."""
    path = extra_disk(spec, number)
    if not path.exists():
        create_disk(spec, path)
    drive = (f"file={path},format=qcow2,if=none,id=disk{number - 1},cache=unsafe,discard=unmap,"
             "detect-zeroes=unmap")  # fmt: skip
    if spec.disk_bus == "virtio":
        device = f"virtio-blk-pci,drive=disk{number - 1}"
    elif spec.disk_bus == "sata":
        device = f"ide-hd,drive=disk{number - 1},bus=ahci0.{number - 1}"
    else:
        raise LabError("disk", f"unknown disk bus {spec.disk_bus!r}; use virtio or sata")
    return ["-drive", drive, "-device", device]


def _disk_args(spec: VmSpec, bootindex: int | None) -> list[str]:
    drive = f"file={spec.disk},format=qcow2,if=none,id=disk0,cache=unsafe,discard=unmap"
    index = "" if bootindex is None else f",bootindex={bootindex}"
    if spec.disk_bus == "virtio":
        return ["-drive", drive, "-device", f"virtio-blk-pci,drive=disk0{index}"]
    if spec.disk_bus == "sata":
        return [
            "-drive",
            drive,
            "-device",
            "ahci,id=ahci0",
            "-device",
            f"ide-hd,drive=disk0,bus=ahci0.0{index}",
        ]
    raise LabError("disk", f"unknown disk bus {spec.disk_bus!r}; use virtio or sata")


def appended_serial(spec: VmSpec) -> list[str]:
    """COM1 into the serial log, after what an earlier power-on wrote."""
    return ["-chardev", f"file,id=serial0,path={spec.serial_log},append=on",
            "-serial", "chardev:serial0"]  # fmt: skip


def command(
    spec: VmSpec,
    net: LabNetwork,
    max_seconds: float,
    *,
    serial: Sequence[str] | None = None,
    order: BootOrder = NETWORK_ONCE,
    extra: Sequence[str] = (),
) -> list[str]:
    """The full command line, bounded by ``timeout`` so a VM never outlives a crashed harness.
    ``serial``: where COM1 goes (default: a new serial log); ``extra``: more QEMU arguments."""
    nic = f"virtio-net-pci,netdev=net0,mac={spec.mac}"
    if spec.uefi or spec.http_boot:
        nic += ",romfile="  # the firmware's own network stack, not an iPXE option ROM
    if order.nic_index is not None:
        nic += f",bootindex={order.nic_index}"
    firmware = _firmware_args(spec)
    return [
        *net.exec_prefix(),
        *bounded(max_seconds),
        "qemu-system-x86_64",
        "-name",
        spec.name,
        "-accel",
        "tcg",
        "-cpu",
        "qemu64",
        "-smp",
        str(spec.cpus),
        "-m",
        str(spec.memory_mib),
        "-nographic",
        *(serial if serial is not None else ["-serial", f"file:{spec.serial_log}"]),
        "-monitor",
        "none",
        *firmware,
        *_disk_args(spec, order.disk_index),
        "-netdev",
        f"tap,id=net0,ifname={spec.tap},script=no,downscript=no",
        "-device",
        nic,
        *(["-boot", order.boot] if order.boot else []),
        *extra,
    ]


def power_on(
    spec: VmSpec, net: LabNetwork, max_seconds: float, extra: Sequence[str] = ()
) -> Background:
    """Create the VM's tap and disk if needed and start it; ``extra``: more QEMU arguments."""
    if not spec.disk.exists():
        create_disk(spec)
    spec.serial_log.unlink(missing_ok=True)
    spec.serial_log.touch()
    net.add_tap(spec.tap)
    return launch(spec.name, command(spec, net, max_seconds, extra=extra), spec.qemu_log)


def power_cut(process: Background, timeout: float = 30) -> None:
    """Pull the plug: SIGKILL to the VM's whole process group, no shutdown of any kind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError("vm", f"{process.name} (pid {process.pid}) outlived SIGKILL") from exc


def wait_released(path: Path, timeout: float = 30) -> None:
    """Until no QEMU holds the image ``path`` (its write lock): a VM whose power was cut dies a
    moment after the wrapper :func:`power_cut` waits for, and a VM started on the image before
    then fails at once with 'Failed to get "write" lock'."""
    deadline = time.monotonic() + timeout
    while run(["qemu-img", "info", path], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise LabError("disk", f"{path} is still held by a QEMU {timeout:.0f} s after its "
                           "power cut")  # fmt: skip
        time.sleep(0.5)


def power_on_again(spec: VmSpec, net: LabNetwork, max_seconds: float) -> Background:
    """Start a VM that ran before with the same disk, MAC and tap, network boot first again (as
    its ``-boot`` says); its serial log goes on where the last run's ended."""
    if not spec.disk.exists():
        raise LabError("disk", f"{spec.disk} is gone; power_on_again needs the VM's disk")
    argv = command(spec, net, max_seconds, serial=appended_serial(spec))
    return launch(spec.name, argv, spec.qemu_log)
