"""GRUB onto the target disk, for BIOS and for UEFI, without mounting anything but the root.

Both firmware paths boot the same ``/boot/grub/grub.cfg`` in the dom0 root: the core image
carries a tiny embedded config that finds the root filesystem by its label, so no device name
or partition number is baked into the boot code and a moved disk still boots.

BIOS: GRUB's ``boot.img`` goes into the protective MBR's boot code (the GPT entries and disk
signature stay), ``core.img`` into the BIOS boot partition, with the two sector pointers that
``grub-setup`` would patch set here. UEFI: the core image is written to the ESP with mtools (no
vfat driver needed) at our own path and at the removable fallback ``EFI/BOOT/BOOTX64.EFI`` that
firmware without an NVRAM entry boots; an NVRAM entry is added only when the answer file allows
it and the running system has efivars.

On a software RAID1 (md metadata 1.0, see ``installer.block.mdadm``) all of it is written once,
through the array: the array's data starts at each member's first sector, so the boot code, the
core image in the BIOS boot partition and the ESP land on every member, and the firmware boots
from either disk alone. The core image then also carries GRUB's md driver, so it can read the
root inside a mirror that lacks a member; the NVRAM entry, when written, is one per member.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import runner
from hypervisor.grub import XenBoot, render_grub_cfg
from installer.errors import FailedError

log = logging.getLogger(__name__)

GRUB_LIB = Path("/usr/lib/grub")
EFIVARS = Path("/sys/firmware/efi/efivars")
EFI_DIR = "xcp-provision"
SECTOR = 512

# Modules built into the core image: enough to find the root by label and boot Xen from it.
CORE_MODULES = (
    "part_gpt", "part_msdos", "ext2", "fat", "search", "search_label", "normal", "configfile",
    "multiboot2", "gzio", "serial", "terminal", "echo", "test", "boot", "ls", "cat", "reboot",
    "halt",
)  # fmt: skip
BIOS_MODULES = ("biosdisk",)
EFI_MODULES = ("efi_gop", "efi_uga", "all_video")
RAID_MODULES = ("diskfilter", "mdraid1x")

# Offsets in GRUB's boot.img (grub-core/boot/i386/pc/boot.S), as grub-setup patches them.
_BPB_START, _BPB_END = 0x03, 0x5A
_KERNEL_SECTOR = 0x5C
_DRIVE_CHECK = 0x66
_MBR_TABLE_START, _MBR_END = 0x1B8, 0x200
# The last 12 bytes of core.img's first sector (diskboot.img): start LBA, length, segment.
_BLOCKLIST = SECTOR - 12


class BootloaderError(FailedError):
    """GRUB could not be written to the target."""


@dataclass(frozen=True)
class Firmware:
    """Where GRUB goes: ``disk`` for the MBR, ``boot_partition`` (BIOS boot or ESP) for the core.

    ``raid_members``: the disks of the software RAID1 that ``disk`` is, if it is one.
    """

    disk: str
    boot_partition: str
    boot_partition_number: int
    uefi: bool
    raid_members: tuple[str, ...] = ()


def write_grub_cfg(root: Path, boot: XenBoot) -> Path:
    path = root / "boot/grub/grub.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".cfg.tmp")
    tmp.write_text(render_grub_cfg(boot))
    os.replace(tmp, path)
    return path


def early_config(root_label: str) -> str:
    """Embedded in the core image: find the root by label, then read its grub.cfg."""
    return (
        f"search --no-floppy --label --set=root {root_label}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile $prefix/grub.cfg\n"
    )


def install(firmware: Firmware, root: Path, boot: XenBoot, *, write_boot_entry: bool) -> None:
    """grub.cfg into the root, then GRUB's modules and boot code for the firmware."""
    write_grub_cfg(root, boot)
    install_boot_code(firmware, root, boot.root_label, write_boot_entry=write_boot_entry)


def install_boot_code(
    firmware: Firmware, root: Path, root_label: str, *, write_boot_entry: bool
) -> None:
    """GRUB for the root labelled ``root_label``, leaving its grub.cfg as it is (restore)."""
    platform = "x86_64-efi" if firmware.uefi else "i386-pc"
    _copy_modules(platform, root / "boot/grub" / platform)
    with tempfile.TemporaryDirectory(prefix="xcp-grub-") as tmp:
        core = _mkimage(platform, root_label, Path(tmp), raid=bool(firmware.raid_members))
        if firmware.uefi:
            _install_efi(core, firmware, write_boot_entry=write_boot_entry)
        else:
            _install_bios(core, firmware)


def _copy_modules(platform: str, dest: Path) -> None:
    """GRUB's modules for ``insmod`` at the menu, as grub-install leaves them."""
    source = GRUB_LIB / platform
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.suffix in (".mod", ".lst"):
            shutil.copyfile(item, dest / item.name)


def _mkimage(platform: str, root_label: str, tmp: Path, *, raid: bool = False) -> Path:
    config = tmp / "early.cfg"
    config.write_text(early_config(root_label))
    out = tmp / ("core.efi" if platform.endswith("efi") else "core.img")
    modules = (*CORE_MODULES, *(EFI_MODULES if platform.endswith("efi") else BIOS_MODULES))
    if raid:
        modules += RAID_MODULES
    runner.run(
        [
            "grub-mkimage",
            "--directory", GRUB_LIB / platform,
            "--format", platform,
            "--output", out,
            "--config", config,
            "--prefix", "/boot/grub",
            *modules,
        ]
    )  # fmt: skip
    return out


def _install_bios(core_path: Path, firmware: Firmware) -> None:
    core = bytearray(core_path.read_bytes())
    part_start = _partition_start_sector(firmware.boot_partition)
    part_size = _device_size(firmware.boot_partition)
    if len(core) > part_size:
        raise BootloaderError(
            f"GRUB's core image ({len(core)} bytes) does not fit the BIOS boot partition "
            f"{firmware.boot_partition} ({part_size} bytes)"
        )
    # diskboot.img loads the rest of core.img from the sector after itself.
    struct.pack_into("<Q", core, _BLOCKLIST, part_start + 1)
    _write_at(firmware.boot_partition, 0, bytes(core))

    boot_img = bytearray((GRUB_LIB / "i386-pc/boot.img").read_bytes())
    with open(firmware.disk, "rb") as fh:
        mbr = fh.read(SECTOR)
    boot_img[_BPB_START:_BPB_END] = mbr[_BPB_START:_BPB_END]
    struct.pack_into("<Q", boot_img, _KERNEL_SECTOR, part_start)
    # A hard disk: skip the BIOS drive-number check that some firmware gets wrong.
    boot_img[_DRIVE_CHECK : _DRIVE_CHECK + 2] = b"\x90\x90"
    boot_img[_MBR_TABLE_START:_MBR_END] = mbr[_MBR_TABLE_START:_MBR_END]
    _write_at(firmware.disk, 0, bytes(boot_img))
    log.info("GRUB boot code in %s, core image in %s", firmware.disk, firmware.boot_partition)


def _partition_start_sector(partition: str) -> int:
    name = Path(os.path.realpath(partition)).name
    try:
        return int((Path("/sys/class/block") / name / "start").read_text())
    except OSError as exc:
        raise BootloaderError(f"cannot find where {partition} starts: {exc}") from exc


def _device_size(device: str) -> int:
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _write_at(device: str, offset: int, data: bytes) -> None:
    fd = os.open(device, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _install_efi(core: Path, firmware: Firmware, *, write_boot_entry: bool) -> None:
    esp = firmware.boot_partition
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for directory in ("::/EFI", "::/EFI/BOOT", f"::/EFI/{EFI_DIR}"):
        if runner.run(["mdir", "-i", esp, directory], check=False, env=env).returncode != 0:
            runner.run(["mmd", "-i", esp, directory], env=env)
    for target in (f"::/EFI/{EFI_DIR}/grubx64.efi", "::/EFI/BOOT/BOOTX64.EFI"):
        runner.run(["mcopy", "-o", "-i", esp, core, target], env=env)
    log.info("GRUB in %s at EFI/%s/grubx64.efi and EFI/BOOT/BOOTX64.EFI", esp, EFI_DIR)
    # sysfs always has the efivars directory on UEFI; it has entries only once efivarfs is
    # mounted, and efibootmgr needs that ("EFI variables are not supported on this system").
    if write_boot_entry and EFIVARS.is_dir() and any(EFIVARS.iterdir()):
        # Firmware knows disks, not md arrays: each member gets its own entry.
        members = firmware.raid_members
        for disk in members or (firmware.disk,):
            label = f"XCP-provision ({Path(disk).name})" if members else "XCP-provision"
            runner.run(
                [
                    "efibootmgr", "--create",
                    "--disk", disk,
                    "--part", str(firmware.boot_partition_number),
                    "--label", label,
                    "--loader", f"\\EFI\\{EFI_DIR}\\grubx64.efi",
                ]
            )  # fmt: skip
    elif write_boot_entry:
        log.info("no efivars here: no NVRAM entry; firmware boots EFI/BOOT/BOOTX64.EFI")
