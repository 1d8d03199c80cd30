"""Upgrade and restore: the two modes that keep a host's data.

Upgrade copies the installed root to the backup partition (marked ``.xen-backup-partition``, as
XCP-ng marks it), lays the new release into a fresh root carrying the same label, keeps the host's
identity and configuration, and leaves the logs partition and the local SR alone. Restore puts
the backup back. Both refuse before writing when the firmware mode differs from the installed
one (the boot partition could not boot it), and restore refuses zero or several backups rather
than guess which one the operator meant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from answerfiles.model import AnswerFile, ScriptStage
from common import runner
from common.release import Manifest
from hypervisor import grub
from installer import bootloader, cmdline, hostconfig, laydown, scripts
from installer.block import mkfs
from installer.bootmode import booted_mode, refuse_secure_boot
from installer.discovery import Disk, DiskPartition, describe_disk, discover
from installer.errors import RefusedError
from installer.hostsize import HostSize
from installer.mounts import mounted_tree
from installer.plan import GPT_BASIC_DATA, GPT_BIOS_BOOT, GPT_ESP, BootMode
from installer.progress import Progress, Reporter, Step
from installer.release import load_release, open_source
from installer.runlog import LogCapture, save_log
from installer.target import disk_path, is_image_file, target_device

log = logging.getLogger(__name__)

BACKUP_MARKER = ".xen-backup-partition"
# libblkid's name for an md member's superblock on a whole disk.
RAID_MEMBER = "linux_raid_member"
# Host identity and configuration carried from the old root into the upgraded one.
PRESERVED = (
    "etc/hostname", "etc/hosts", "etc/network/interfaces.d", "etc/systemd/network",
    "etc/resolv.conf", "etc/shadow", "etc/machine-id", "etc/timezone", "etc/localtime",
    "etc/default/keyboard", "etc/vconsole.conf", "etc/fstab", "etc/xcp-provision",
    "etc/systemd/timesyncd.conf.d", "etc/ssh", "etc/xensource-inventory",
)  # fmt: skip
STEPS = (
    Step("prepare", 1),
    Step("backup", 20),
    Step("laydown", 100),
    Step("configure", 1),
    Step("bootloader", 2),
    Step("finish", 1),
)


class ModeRefusedError(RefusedError):
    """Upgrade or restore cannot start on this disk; nothing was written."""


@dataclass(frozen=True)
class Installation:
    """An installation found on a disk, by its partitions."""

    disk: Disk
    root: DiskPartition
    backup: DiskPartition | None
    logs: DiskPartition | None
    boot: DiskPartition

    @property
    def boot_mode(self) -> BootMode:
        return BootMode.UEFI if self.boot.type.upper() == GPT_ESP else BootMode.BIOS

    def firmware(self) -> bootloader.Firmware:
        return bootloader.Firmware(
            self.disk.path, self.boot.path, self.boot.number, self.boot_mode is BootMode.UEFI
        )


def find_installation(disk: Disk) -> Installation:
    if RAID_MEMBER in disk.signatures:
        # Its partitions are the mirror's, seen through one member: writing them would change
        # that member alone, behind md's back.
        raise ModeRefusedError(
            f"{disk.path} is a member of a software RAID: upgrading or restoring an installation "
            "on software RAID is not supported yet, and writing one member would split the mirror"
        )
    roots = [p for p in disk.partitions if (p.label or "").startswith("root-")]
    if len(roots) != 1:
        found = "no" if not roots else f"{len(roots)}"
        raise ModeRefusedError(
            f"{disk.path} holds {found} installation root (a partition labelled root-*): "
            "nothing to upgrade or restore there"
        )
    boots = [p for p in disk.partitions if p.type.upper() in (GPT_ESP, GPT_BIOS_BOOT)]
    if len(boots) != 1:
        raise ModeRefusedError(f"{disk.path} has no single boot partition (ESP or BIOS boot)")
    logs = next((p for p in disk.partitions if (p.label or "").startswith("logs-")), None)
    return Installation(disk, roots[0], _backup_of(disk, roots[0], logs), logs, boots[0])


def _backup_of(disk: Disk, root: DiskPartition, logs: DiskPartition | None) -> DiskPartition | None:
    """Our GPT names it ``backup``; XCP-ng names no partition, and numbers it root + 1."""
    named = next((p for p in disk.partitions if p.name == "backup"), None)
    if named is not None:
        return named
    after = disk.partition(root.number + 1)
    if after is None or after is logs or after.type.upper() != GPT_BASIC_DATA:
        return None
    return after


def _check_firmware(found: BootMode, wanted: BootMode, what: str) -> None:
    if found is not wanted:
        raise ModeRefusedError(
            f"{what} was installed for {found.value.upper()} firmware but this host boots "
            f"{wanted.value.upper()}: switch the firmware mode (or pass --boot-mode "
            f"{found.value}) and try again"
        )


def _copy_tree(source: Path, dest: Path) -> None:
    runner.run(["cp", "-a", "--one-file-system", f"{source}/.", str(dest)])


@contextlib.contextmanager
def _stage_scripts(answers: AnswerFile) -> Iterator[None]:
    """The answer file's first and last scripts, which XCP-ng runs in every mode: the last one
    learns the outcome (``0`` or ``1``), so a site's hook can report a failed upgrade too."""
    scripts.run_stage(answers.scripts, ScriptStage.INSTALLATION_START)
    try:
        yield
    except Exception:
        scripts.run_stage(answers.scripts, ScriptStage.INSTALLATION_COMPLETE, "1")
        raise
    scripts.run_stage(answers.scripts, ScriptStage.INSTALLATION_COMPLETE, "0")


@contextlib.contextmanager
def _reporting(
    reporters: tuple[Reporter, ...],
) -> Iterator[tuple[Progress, LogCapture]]:
    progress = Progress(STEPS, reporters)
    with LogCapture() as capture:
        try:
            yield progress, capture
        except Exception as exc:
            log.error("%s", exc)
            progress.failed(str(exc), capture.text())
            raise
    progress.done()


def upgrade(
    answers: AnswerFile,
    *,
    target: str | None = None,
    boot_mode: BootMode | None = None,
    reporters: tuple[Reporter, ...] = (),
    host_console: grub.HostConsole | None = None,
) -> Installation:
    """Back up the root, lay the new release into it, keep identity, logs and SR.

    ``host_console`` (default: the boot command line's) is where the new GRUB menu's default
    entry sends Xen's and dom0's console, as for a fresh install."""
    wanted = boot_mode or booted_mode()
    with target_device(target) as device:
        name = device or answers.existing_installation
        if name is None:
            raise ModeRefusedError("upgrade needs <existing-installation> naming the disk")
        with (
            _reporting(reporters) as (progress, capture),
            _stage_scripts(answers),
            contextlib.ExitStack() as media,
        ):
            if not is_image_file(target):
                refuse_secure_boot()
            return _upgrade(
                progress,
                capture,
                answers,
                disk_path(name),
                wanted,
                media=media,
                console=cmdline.host_console(host_console),
            )


def _upgrade(
    progress: Progress,
    capture: LogCapture,
    answers: AnswerFile,
    disk_path: str,
    wanted: BootMode,
    *,
    media: contextlib.ExitStack,
    console: grub.HostConsole,
) -> Installation:
    progress.start("prepare", f"looking for the installation on {disk_path}")
    found = find_installation(describe_disk(disk_path))
    _check_firmware(found.boot_mode, wanted, f"the installation on {disk_path}")
    if found.backup is None:
        raise ModeRefusedError(f"{disk_path} has no backup partition, so it cannot be upgraded")
    base, manifest = load_release(answers, open_source(answers, media))
    suffix = found.root.label.removeprefix("root-")  # type: ignore[union-attr]

    progress.start("backup", f"copying the root to the backup partition {found.backup.path}")
    mkfs.ext(found.backup.path, f"backup-{suffix}")
    with mounted_tree() as mounts:
        old = mounts.mount(found.root.path, "old", options="ro")
        backup = mounts.mount(found.backup.path, "backup")
        _copy_tree(old, backup)
        (backup / BACKUP_MARKER).write_text(f"backup of {found.root.label}\n")
    mkfs.ext(found.root.path, found.root.label)  # type: ignore[arg-type]

    with mounted_tree() as mounts:
        root = mounts.mount(found.root.path, "root")
        if found.logs is not None:
            mounts.mount(found.logs.path, "root/var/log")
        backup = mounts.mount(found.backup.path, "backup", options="ro")
        progress.start("laydown", "downloading and writing the new release")
        laid = laydown.lay_down(base, manifest, root)
        progress.start("configure", "carrying the host's configuration over")
        boot = _carry_over(backup, root, laid, manifest, found, console=console)
        progress.start("bootloader", "writing GRUB")
        bootloader.install(
            found.firmware(), root, boot, write_boot_entry=answers.bootloader.write_boot_entry
        )
        scripts.run_stage(answers.scripts, ScriptStage.FILESYSTEM_POPULATED, str(root))
        save_log(root, capture.text(), "upgrade")
    return found


def _carry_over(
    backup: Path,
    root: Path,
    laid: laydown.LaidDown,
    manifest: Manifest,
    found: Installation,
    *,
    console: grub.HostConsole,
) -> grub.XenBoot:
    for rel in PRESERVED:
        source = backup / rel
        if source.exists() or source.is_symlink():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            runner.run(["cp", "-a", "--remove-destination", "-T", str(source), str(root / rel)])
    inventory = hostconfig.read_inventory(root)
    host = HostSize.of_this_host()
    mem = int(inventory.get("DOM0_MEM") or grub.dom0_memory_mib(host.memory_kib))
    vcpus = int(inventory.get("DOM0_VCPUS") or grub.dom0_vcpus(host.cpus))
    inventory.update(
        XEN_VERSION=laid.xen_version,
        LINUX_KABI_VERSION=laid.kernel_version,
        PRODUCT_VERSION=manifest.version,
    )
    (root / hostconfig.INVENTORY).write_text(
        "".join(f"{key}='{value}'\n" for key, value in inventory.items())
    )
    return grub.XenBoot(
        root_label=found.root.label or "",
        dom0_mem_mib=mem,
        dom0_max_vcpus=vcpus,
        default=laid.default,
        fallback=laid.fallback,
        version=f"Xen {laid.xen_version}" if laid.xen_version else "",
        console=console,
    )


def has_backup_marker(partition: DiskPartition) -> bool:
    """Whether an ext partition carries the marker, read with debugfs (no mount)."""
    if partition.fstype not in ("ext2", "ext3", "ext4"):
        return False
    result = runner.run(["debugfs", "-R", f"stat /{BACKUP_MARKER}", partition.path], check=False)
    return result.returncode == 0 and "Inode:" in result.stdout


def restore(
    answers: AnswerFile,
    *,
    target: str | None = None,
    boot_mode: BootMode | None = None,
    reporters: tuple[Reporter, ...] = (),
) -> Installation:
    """Put the one backup found back into the root partition of its disk."""
    wanted = boot_mode or booted_mode()
    with target_device(target) as device:
        name = device or answers.backup_disk
        disks = (describe_disk(disk_path(name)),) if name else discover().disks
        with _reporting(reporters) as (progress, capture), _stage_scripts(answers):
            if not is_image_file(target):
                refuse_secure_boot()
            return _restore(progress, capture, answers, disks, wanted)


def _restore(
    progress: Progress,
    capture: LogCapture,
    answers: AnswerFile,
    disks: tuple[Disk, ...],
    wanted: BootMode,
) -> Installation:
    progress.start("prepare", "looking for backups")
    backups = [(d, p) for d in disks for p in d.partitions if has_backup_marker(p)]
    if len(backups) != 1:
        where = ", ".join(p.path for _d, p in backups)
        raise ModeRefusedError(
            "no backup partition was found (none carries .xen-backup-partition)"
            if not backups
            else f"{len(backups)} backup partitions were found ({where}): name the disk with "
            "<backup-disk> or --target-disk"
        )
    disk, backup = backups[0]
    found = dataclasses.replace(find_installation(disk), backup=backup)
    _check_firmware(found.boot_mode, wanted, f"the backup on {backup.path}")

    progress.start("backup", f"restoring {backup.path} into {found.root.path}")
    mkfs.ext(found.root.path, found.root.label)  # type: ignore[arg-type]
    with mounted_tree() as mounts:
        source = mounts.mount(backup.path, "backup", options="ro")
        root = mounts.mount(found.root.path, "root")
        _copy_tree(source, root)
        (root / BACKUP_MARKER).unlink(missing_ok=True)
        progress.start("bootloader", "writing GRUB")
        bootloader.install_boot_code(
            found.firmware(),
            root,
            found.root.label or "",
            write_boot_entry=answers.bootloader.write_boot_entry,
        )
        if found.logs is not None:
            mounts.mount(found.logs.path, "root/var/log")
            save_log(root, capture.text(), "restore")
    return found
