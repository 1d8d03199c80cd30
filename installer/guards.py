"""Guard rails: every reason to refuse a disk, checked before anything is written.

XCP-ng users have lost an external USB disk to the installer and had installs broken by disks
still in use; each rule here is one clear refusal (exit 2, nothing written). The checks are pure
functions of ``Disk`` values, so the plan runs them with what discovery saw and ``apply_plan``
runs them again with what the disk looks like just before writing.
"""

from __future__ import annotations

from installer.discovery import Disk, DiskIdentity
from installer.errors import RefusedError

GIB = 1 << 30
MINIMUM_PRIMARY_BYTES = 46 * GIB


class GuardError(RefusedError):
    """A disk refused by one guard rail; ``rule`` names it for scripts and tests."""

    def __init__(self, disk: str, rule: str, sentence: str) -> None:
        self.disk = disk
        self.rule = rule
        super().__init__(sentence)


def gib(size_bytes: int) -> str:
    return f"{size_bytes / GIB:.1f} GiB"


def check_target(
    disk: Disk,
    *,
    role: str,
    named_by_stable_id: bool,
    installer_disks: tuple[str, ...],
    minimum_bytes: int | None = None,
) -> None:
    """Refuse ``disk`` as the ``role`` disk ("primary", "guest") for the first rule it breaks."""
    where = f"{disk.path} ({role} disk)"
    if disk.path in installer_disks:
        raise GuardError(disk.path, "installer-disk",
                         f"{where} is the disk this installer is running from; choose another")
    if (disk.removable or disk.is_usb) and not named_by_stable_id:
        kind = "a USB disk" if disk.is_usb else "removable"
        raise GuardError(
            disk.path, "removable",
            f"{where} is {kind}; to install onto it anyway, name it by a stable "
            "/dev/disk/by-id/ or /dev/disk/by-path/ path",
        )
    if disk.read_only:
        raise GuardError(disk.path, "read-only", f"{where} is read-only")
    check_not_in_use(disk, role=role)
    if minimum_bytes is not None and disk.size_bytes < minimum_bytes:
        raise GuardError(
            disk.path, "too-small",
            f"{where} is too small: it has {gib(disk.size_bytes)} and the XCP-ng layout needs "
            f"at least {minimum_bytes // GIB} GiB",
        )


def check_not_in_use(disk: Disk, *, role: str) -> None:
    """Mounted (or swapped on) anywhere, or held by md, LVM or device-mapper: refuse."""
    where = f"{disk.path} ({role} disk)"
    mounts = disk.all_mountpoints
    if mounts:
        raise GuardError(disk.path, "mounted",
                         f"{where} is in use: mounted at {', '.join(sorted(set(mounts)))}; "
                         "unmount it first")
    holders = disk.all_holders
    if holders:
        raise GuardError(
            disk.path, "held",
            f"{where} is in use by {', '.join(sorted(set(holders)))} (RAID, LVM or "
            "device-mapper); stop those first",
        )


def check_unchanged(planned: DiskIdentity, current: DiskIdentity) -> None:
    """The disk written must be the disk planned: same serial, WWN, size and image file."""
    changed = [
        f"{what} {before!r} -> {after!r}"
        for what, before, after in (
            ("serial", planned.serial, current.serial),
            ("WWN", planned.wwn, current.wwn),
            ("size", planned.size_bytes, current.size_bytes),
            ("image file", planned.backing_file, current.backing_file),
        )
        if before != after
    ]
    if changed:
        raise GuardError(
            planned.path, "identity-changed",
            f"{planned.path} changed since the plan was made ({'; '.join(changed)}); "
            "plan again",
        )
