"""The disk plan: answers and hardware in, exact partitions out. Pure: no I/O.

Both front-ends, the server (to preview a host's layout) and the tests share it. The layout is
XCP-ng 8.3's, to the sector: partitions numbered 1 to 6 and laid out 5, 2, 1, 4, 6, 3 (logs,
backup, root, boot, swap, then the local SR over the rest), 1 MiB aligned, filesystem labels
sharing one random 6-letter suffix. A preserved vendor utility partition keeps number 1 and
shifts the others up by one; without guest storage there is no SR and boot takes number 3.
The SR's type is settled here too, since XCP-ng's default for it depends on the disks' sectors.
Every guard rail runs here, so a refused plan never reaches a disk.

Software RAID1 as the primary disk (``<raid>``, XCP-ng's whole-disk mirror with metadata 1.0) is
planned here too: the members are checked as a primary disk would be, and the layout is made for
the array, whose size the plan fixes (the smallest member less ``RAID_RESERVE_BYTES``) so that
it is exact before the array exists.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from answerfiles.model import AnswerFile, DiskRule, Mode, PreserveFirstPartition, Raid, SrType
from installer import guards
from installer.discovery import Disk, DiskIdentity, DiskPartition, Hardware
from installer.errors import RefusedError
from installer.target import disk_path

MIB = 1 << 20
GIB = 1 << 30
ROOT_BYTES = 18 * GIB
BACKUP_BYTES = 18 * GIB
BOOT_BYTES = 512 * MIB
LOGS_BYTES = 4 * GIB
SWAP_BYTES = 1 * GIB
# The GPT backup header and entry array at the end of the disk (16 KiB of entries + header).
_GPT_ENTRIES_BYTES = 16 * 1024

GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
GPT_LINUX_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
GPT_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
GPT_LINUX_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

# Partition roles, the names image laydown and the TUI look partitions up by.
ROLES = ("root", "backup", "sr", "boot", "logs", "swap", "utility")
_UTILITY_MBR_TYPES = {"de"}
# Disks with logical sectors this large (4Kn) hold only a largeblock SR, as in XCP-ng 8.3.
LARGE_BLOCK_BYTES = 4096
# What each RAID member keeps beyond the array's data: md's metadata 1.0 superblock sits in the
# member's last 8 KiB (4 KiB aligned) and its write-intent bitmap (at most 128 KiB) just before.
RAID_RESERVE_BYTES = 1 * MIB
# mdadm warns when the largest member exceeds the smallest by more than 1%: a mirror is as large
# as its smallest member and the rest of the others is lost.
RAID_SIZE_SLACK = 0.01


class BootMode(StrEnum):
    BIOS = "bios"
    UEFI = "uefi"


class PlanError(RefusedError):
    """The answers cannot be turned into a plan for this hardware."""


@dataclass(frozen=True)
class PartitionSpec:
    """One partition, in logical sectors of its disk; ``end`` is the last sector (inclusive)."""

    number: int
    role: str
    start: int
    end: int
    sector_size: int
    gpt_type: str
    flag: str | None
    name: str
    filesystem: str | None = None
    label: str | None = None
    preserve: bool = False

    @property
    def sectors(self) -> int:
        return self.end - self.start + 1

    @property
    def size_bytes(self) -> int:
        return self.sectors * self.sector_size

    @property
    def start_bytes(self) -> int:
        return self.start * self.sector_size


@dataclass(frozen=True)
class DiskPlan:
    """What happens to one disk: its snapshot at plan time, and the partitions it gets."""

    disk: Disk
    partitions: tuple[PartitionSpec, ...]
    wipe: bool = True
    named_by_stable_id: bool = False

    @property
    def identity(self) -> DiskIdentity:
        return self.disk.identity

    def by_role(self, role: str) -> PartitionSpec | None:
        return next((p for p in self.partitions if p.role == role), None)

    @property
    def on_disk_order(self) -> tuple[PartitionSpec, ...]:
        return tuple(sorted(self.partitions, key=lambda p: p.start))


@dataclass(frozen=True)
class RaidPlan:
    """The software RAID1 that is the primary disk: ``device`` made from ``members`` (each erased
    whole), ``size_bytes`` of each member used, before the array is partitioned. ``homehost``
    (the installed host's name) goes into the array's name, so that host finds it its own."""

    device: str
    members: tuple[DiskPlan, ...]
    size_bytes: int
    homehost: str


@dataclass(frozen=True)
class Plan:
    primary: DiskPlan
    guest_disks: tuple[DiskPlan, ...]
    boot_mode: BootMode
    label_suffix: str
    installer_disks: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # The local SR's type, decided with the disks in hand; None when no disk is given to an SR.
    sr_type: SrType | None = None
    # Set when the primary disk is a software RAID1: ``primary`` is then the array to be made.
    raid: RaidPlan | None = None

    @property
    def sr_disks(self) -> tuple[DiskPlan, ...]:
        """The disks the local SR spans: the primary when it has an SR partition, every guest."""
        with_sr = (self.primary,) if self.primary.by_role("sr") else ()
        return (*with_sr, *self.guest_disks)

    @property
    def disks(self) -> tuple[DiskPlan, ...]:
        """The physical disks written: the RAID members in place of the array that is not yet."""
        primary = self.raid.members if self.raid is not None else (self.primary,)
        return (*primary, *self.guest_disks)

    @property
    def identities(self) -> tuple[DiskIdentity, ...]:
        """The identity snapshot ``apply_plan`` compares with the disks it is about to write."""
        return tuple(d.identity for d in self.disks)

    def partition(self, role: str) -> PartitionSpec:
        if role not in ROLES:
            raise KeyError(f"unknown partition role {role!r}: one of {', '.join(ROLES)}")
        spec = self.primary.by_role(role)
        if spec is None:
            raise KeyError(f"this plan has no {role!r} partition")
        return spec

    def label(self, role: str) -> str:
        label = self.partition(role).label
        if label is None:
            raise KeyError(f"the {role!r} partition carries no filesystem label")
        return label


def make_plan(
    answers: AnswerFile,
    hardware: Hardware,
    boot_mode: BootMode,
    *,
    suffix: str | None = None,
    installer_disk: str | Sequence[str] | None = None,
) -> Plan:
    """The whole plan, or a :class:`~installer.errors.RefusedError` saying why not.

    ``installer_disk``: the disk(s) the installer runs from (``discovery.installer_disks()``);
    they are never a target.
    """
    own = (installer_disk,) if isinstance(installer_disk, str) else tuple(installer_disk or ())
    if answers.mode not in (Mode.FRESH, Mode.REINSTALL):
        raise PlanError(
            f"a disk plan is made for fresh installs and reinstalls, not {answers.mode}"
        )
    if suffix is None:
        suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    elif len(suffix) != 6 or not all(c in string.ascii_lowercase for c in suffix):
        raise PlanError(f"label suffix {suffix!r} must be 6 lowercase letters")

    primary_disk = answers.primary_disk
    guest_storage = primary_disk.guest_storage if primary_disk else True
    preserve = (
        primary_disk.preserve_first_partition
        if primary_disk
        else (PreserveFirstPartition.IF_UTILITY)
    )
    notes: list[str] = []
    raid: RaidPlan | None = None
    if answers.raid is not None:
        disk, raid = _raid(answers.raid, answers, hardware, own=own, preserve=preserve, notes=notes)
        stable = False
    else:
        disk, stable = _primary(answers, hardware, own)
        guards.check_target(
            disk,
            role="primary",
            named_by_stable_id=stable,
            installer_disks=own,
            minimum_bytes=guards.MINIMUM_PRIMARY_BYTES,
        )
    if primary_disk is not None and not primary_disk.sr_at_end:
        notes.append(
            "sr-at-end=false is accepted but the SR is still placed at the end of the "
            "disk (XCP-ng 8.3's layout)"
        )
    utility = _preserved(disk, preserve, notes)
    partitions = _layout(disk, boot_mode, guest_storage, utility, suffix)
    primary = DiskPlan(disk, partitions, named_by_stable_id=stable)

    guests: list[DiskPlan] = []
    taken = {d.disk.path for d in (raid.members if raid else ())} | {disk.path}
    for name in answers.guest_disks:
        guest, guest_stable = _resolve(name, hardware)
        if guest.path in taken:
            raise PlanError(f"guest disk {name} ({guest.path}) is already used by this plan")
        taken.add(guest.path)
        guards.check_target(
            guest, role="guest", named_by_stable_id=guest_stable, installer_disks=own
        )
        guests.append(DiskPlan(guest, (), named_by_stable_id=guest_stable))
    plan = Plan(primary, tuple(guests), boot_mode, suffix, own, tuple(notes), raid=raid)
    return replace(plan, sr_type=_sr_type(answers.sr_type, plan.sr_disks))


def _raid(
    raid: Raid,
    answers: AnswerFile,
    hardware: Hardware,
    *,
    own: tuple[str, ...],
    preserve: PreserveFirstPartition,
    notes: list[str],
) -> tuple[Disk, RaidPlan]:
    """The members, each held to a primary disk's guard rails, and the array they will make."""
    device = disk_path(raid.device)
    named = answers.primary_disk.disk if answers.primary_disk else None
    if named is None or disk_path(named) != device:
        raise PlanError(
            f"<raid> makes {device} from {', '.join(raid.disks)}, but the primary disk is "
            f"{named or 'not named'}: software RAID is installed onto as the primary disk only; "
            f"write <primary-disk>{raid.device}</primary-disk>"
        )
    if preserve is PreserveFirstPartition.TRUE:
        raise PlanError(
            'preserve-first-partition="true" cannot be honoured on software RAID: its members '
            "are erased whole; remove the attribute or install onto a single disk"
        )
    members: list[DiskPlan] = []
    for name in raid.disks:
        member, stable = _resolve(name, hardware)
        if any(m.disk.path == member.path for m in members):
            raise PlanError(
                f"RAID member {name} ({member.path}) is named twice: a mirror needs different disks"
            )
        guards.check_target(
            member,
            role="RAID member",
            named_by_stable_id=stable,
            installer_disks=own,
            minimum_bytes=guards.MINIMUM_PRIMARY_BYTES,
        )
        first = member.partition(1)
        if first is not None and is_utility(first):
            notes.append(
                f"partition 1 of {member.path} ({first.label or first.name}) is not "
                "preserved: RAID members are erased whole"
            )
        members.append(DiskPlan(member, (), named_by_stable_id=stable))
    if len(members) < 2:
        raise PlanError(
            f"software RAID1 {device} needs at least two member disks, found "
            f"{len(members)}; name two disks in <raid>"
        )
    disks = [m.disk for m in members]
    sectors = {d.logical_sector for d in disks}
    if len(sectors) > 1:
        raise PlanError(
            f"RAID members of {device} have different logical sector sizes ("
            f"{', '.join(f'{d.path} {d.logical_sector}' for d in disks)} bytes): md cannot "
            "mirror them; use disks of one kind"
        )
    smallest = min(disks, key=lambda d: d.size_bytes)
    largest = max(disks, key=lambda d: d.size_bytes)
    if largest.size_bytes - smallest.size_bytes > smallest.size_bytes * RAID_SIZE_SLACK:
        raise PlanError(
            f"RAID members of {device} differ in size by more than "
            f"{RAID_SIZE_SLACK:.0%}: {largest.path} has {guards.gib(largest.size_bytes)}, "
            f"{smallest.path} {guards.gib(smallest.size_bytes)}; a mirror is as large as its "
            f"smallest member, so {guards.gib(largest.size_bytes - smallest.size_bytes)} of "
            f"{largest.path} would be lost; use disks of the same size"
        )
    size = (smallest.size_bytes - RAID_RESERVE_BYTES) // MIB * MIB
    array = Disk(
        name=Path(device).name,
        path=device,
        size_bytes=size,
        logical_sector=sectors.pop(),
        physical_sector=max(d.physical_sector for d in disks),
    )
    notes.append(
        f"{device} is a software RAID1 (md metadata 1.0) of "
        f"{', '.join(d.path for d in disks)}, each erased whole; the layout below is "
        "on the array"
    )
    return array, RaidPlan(device, tuple(members), size, answers.hostname)


def _sr_type(asked: SrType | None, sr_disks: tuple[DiskPlan, ...]) -> SrType | None:
    """XCP-ng 8.3's rule: 4Kn disks take a largeblock SR, chosen for them when none is asked."""
    if not sr_disks:
        return None
    large = [d.disk.path for d in sr_disks if d.disk.logical_sector >= LARGE_BLOCK_BYTES]
    if asked is None:
        return SrType.LARGEBLOCK if large else SrType.EXT
    if large and asked is not SrType.LARGEBLOCK:
        raise PlanError(
            f"{', '.join(large)} {'has' if len(large) == 1 else 'have'} 4096-byte logical "
            f'sectors (4Kn), which an sr-type="{asked}" SR cannot hold: write '
            'sr-type="largeblock" or leave sr-type out'
        )
    return asked


def _primary(answers: AnswerFile, hardware: Hardware, own: tuple[str, ...]) -> tuple[Disk, bool]:
    if answers.primary_disk is not None and answers.primary_disk.disk:
        return _resolve(answers.primary_disk.disk, hardware)
    rule = answers.provisioning.disk_rule
    if rule is None:
        raise PlanError("the answer file names no primary disk (<primary-disk> or <xp:disk-rule>)")
    return _by_rule(rule, hardware, own), False


def _resolve(name: str, hardware: Hardware) -> tuple[Disk, bool]:
    path = disk_path(name)
    for disk in hardware.disks:
        if path in disk.stable_paths:
            return disk, True
    for disk in hardware.disks:
        if path == disk.path:
            return disk, False
    known = ", ".join(d.path for d in hardware.disks) or "none"
    raise PlanError(f"disk {name!r} was not found on this host (disks: {known})")


def _by_rule(rule: DiskRule, hardware: Hardware, own: tuple[str, ...]) -> Disk:
    def matches(disk: Disk) -> bool:
        return (
            not disk.removable
            and not disk.is_usb
            and disk.path not in own
            and (
                rule.by_id is None
                or any(
                    link == rule.by_id or link.rsplit("/", 1)[-1] == rule.by_id
                    for link in disk.by_id
                )
            )
            and (rule.serial is None or disk.serial == rule.serial)
            and (rule.wwn is None or (disk.wwn or "").lower() == rule.wwn.lower())
            and (rule.min_size_gib is None or disk.size_bytes >= rule.min_size_gib * GIB)
            and (rule.max_size_gib is None or disk.size_bytes <= rule.max_size_gib * GIB)
        )

    found = [d for d in hardware.disks if matches(d)]
    if not found:
        raise PlanError(
            f"no disk matches the disk rule ({_describe_rule(rule)}); removable, "
            "USB and the installer's own disk never match"
        )
    if len(found) > 1 and not rule.smallest:
        raise PlanError(
            f"{len(found)} disks match the disk rule ({_describe_rule(rule)}): "
            f"{', '.join(d.path for d in found)}; narrow it or add smallest"
        )
    return min(found, key=lambda d: (d.size_bytes, d.path))


def _describe_rule(rule: DiskRule) -> str:
    parts = [
        f"{name}={value}"
        for name, value in (
            ("by-id", rule.by_id),
            ("serial", rule.serial),
            ("wwn", rule.wwn),
            ("min-size-gib", rule.min_size_gib),
            ("max-size-gib", rule.max_size_gib),
        )
        if value is not None
    ]
    if rule.smallest:
        parts.append("smallest")
    return ", ".join(parts) or "any disk"


def is_utility(partition: DiskPartition) -> bool:
    """A vendor utility partition (Dell's DELLUTILITY and the like): MBR type 0xde or so named."""
    names = f"{partition.label or ''} {partition.name}".upper()
    return partition.type.lower() in _UTILITY_MBR_TYPES or "UTILITY" in names


def _preserved(
    disk: Disk, preserve: PreserveFirstPartition, notes: list[str]
) -> DiskPartition | None:
    first = disk.partition(1)
    if preserve is PreserveFirstPartition.FALSE or first is None:
        return None
    if preserve is PreserveFirstPartition.IF_UTILITY and not is_utility(first):
        return None
    if any(p.start < first.start for p in disk.partitions):
        raise PlanError(
            f"partition 1 of {disk.path} is not the first on the disk, so it cannot "
            'be preserved; set preserve-first-partition="false"'
        )
    notes.append(
        f"partition 1 of {disk.path} ({first.label or first.name or first.type}, "
        f"{first.size_bytes // MIB} MiB) is preserved; the others shift up by one"
    )
    return first


def _layout(
    disk: Disk, boot_mode: BootMode, guest_storage: bool, utility: DiskPartition | None, suffix: str
) -> tuple[PartitionSpec, ...]:
    sector = disk.logical_sector
    mib = MIB // sector
    total = disk.size_bytes // sector
    last_usable = total - 2 - -(-_GPT_ENTRIES_BYTES // sector)
    base = 1
    cursor = mib
    specs: list[PartitionSpec] = []
    if utility is not None:
        base = 2
        utility_end = utility.start + utility.size_bytes // sector - 1
        cursor = max(mib, -(-(utility_end + 1) // mib) * mib)
        # Kept as is in a GPT; carried over from an MBR table as a basic-data partition.
        gpt_type = utility.type if disk.table == "gpt" else GPT_BASIC_DATA
        specs.append(
            PartitionSpec(
                1,
                "utility",
                utility.start,
                utility_end,
                sector,
                gpt_type,
                None,
                utility.name or utility.label or "utility",
                preserve=True,
            )
        )
    uefi = boot_mode is BootMode.UEFI
    numbers = {
        "root": base,
        "backup": base + 1,
        "sr": base + 2,
        "boot": base + 3 if guest_storage else base + 2,
        "logs": base + 4,
        "swap": base + 5,
    }
    fixed = (
        ("logs", LOGS_BYTES, GPT_BASIC_DATA, "msftdata", "ext3", f"logs-{suffix}"),
        ("backup", BACKUP_BYTES, GPT_BASIC_DATA, "msftdata", None, None),
        ("root", ROOT_BYTES, GPT_BASIC_DATA, "msftdata", "ext3", f"root-{suffix}"),
        (
            "boot",
            BOOT_BYTES,
            GPT_ESP if uefi else GPT_BIOS_BOOT,
            "esp" if uefi else "bios_grub",
            "vfat" if uefi else None,
            f"BOOT-{suffix.upper()}" if uefi else None,
        ),
        ("swap", SWAP_BYTES, GPT_LINUX_SWAP, "swap", "swap", f"swap-{suffix}"),
    )
    for role, size, gpt_type, flag, fs, label in fixed:
        end = cursor + size // sector - 1
        specs.append(
            PartitionSpec(numbers[role], role, cursor, end, sector, gpt_type, flag, role, fs, label)
        )
        cursor = end + 1
    sr_end = (last_usable + 1) // mib * mib - 1
    if sr_end <= cursor + mib:
        raise guards.GuardError(
            disk.path,
            "too-small",
            f"{disk.path} (primary disk) is too small: it has {guards.gib(disk.size_bytes)} and "
            f"the XCP-ng layout needs at least {guards.gib((cursor + 2 * mib) * sector)} "
            "after the preserved partition",
        )
    if guest_storage:
        specs.append(
            PartitionSpec(numbers["sr"], "sr", cursor, sr_end, sector, GPT_LINUX_LVM, "lvm", "sr")
        )
    return tuple(sorted(specs, key=lambda p: p.number))
