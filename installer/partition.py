"""Applying a plan: the one step that destroys data, done exactly and only to planned disks.

Order matters. Every disk of the plan is described again and checked against the plan's
identity snapshot and every guard rail first, so a refusal still means nothing was written.
Then, disk by disk: stale signatures go (inside the old partitions, then on the disk, with the
first and last MiB of each zeroed: ``installer.block.wipe`` says why), the GPT is written by
pyparted with the plan's exact geometry, the kernel is told about the partitions and we wait for
their nodes, signatures inside the new partitions go too (an old LVM label or md superblock at
the same offset would come back to life at first boot), then filesystems are made. A software
RAID1 primary disk is made first: its members are wiped whole, mirrored with ``mdadm`` into the
planned array, and the array is checked to be exactly what the plan laid out before it gets the
primary disk's table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import _ped
import parted

from installer import guards
from installer.block import mdadm, nodes, sfdisk, wipe
from installer.discovery import describe_disk
from installer.errors import FailedError
from installer.filesystems import make_filesystem
from installer.plan import DiskPlan, PartitionSpec, Plan, RaidPlan

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Applied:
    """Where each planned partition ended up: role -> device node, for image laydown."""

    disk: str
    devices: Mapping[str, str] = field(default_factory=dict)
    guest_disks: tuple[str, ...] = ()
    label_suffix: str = ""
    # The software RAID1 made as the primary disk (``disk`` is then its device).
    raid: mdadm.Array | None = None

    def device(self, role: str) -> str:
        try:
            return self.devices[role]
        except KeyError:
            raise KeyError(f"no {role!r} partition was made on {self.disk}") from None


def apply_plan(plan: Plan, *, progress: Progress | None = None) -> Applied:
    """Write ``plan`` to its disks; raise a ``RefusedError`` before any write if it is unsafe."""
    say = progress or (lambda _message: None)
    say("checking the disks again")
    for disk_plan, role in _physical(plan):
        _recheck(disk_plan, role, plan.installer_disks)
    if plan.raid is not None:
        _check_free(plan.raid.device)
    devices: dict[str, str] = {}
    array = None
    if plan.raid is not None:
        for member in plan.raid.members:
            say(f"wiping old signatures on {member.disk.path}")
            _clear(member)
        array = _make_array(plan.raid, say)
    for disk_plan, role in _with_roles(plan):
        path = disk_plan.disk.path
        say(f"wiping old signatures on {path}")
        _clear(disk_plan)
        say(f"writing the GPT of {path}")
        _write_table(disk_plan)
        numbers = [p.number for p in disk_plan.partitions]
        made = nodes.add_partitions(path, numbers)
        for spec in sorted(disk_plan.partitions, key=lambda p: p.start):
            if spec.preserve:
                devices[spec.role] = made[spec.number]
                continue
            wipe.wipe(made[spec.number])
            if spec.filesystem is not None:
                say(f"making {spec.filesystem} {spec.label} on {made[spec.number]}")
            make_filesystem(spec, made[spec.number])
            if role == "primary":
                devices[spec.role] = made[spec.number]
    say("partitioning done")
    return Applied(
        plan.primary.disk.path,
        devices,
        tuple(g.disk.path for g in plan.guest_disks),
        plan.label_suffix,
        array,
    )


def _with_roles(plan: Plan) -> list[tuple[DiskPlan, str]]:
    """The disks that get a table: the primary (a RAID array once made) and the guests."""
    return [(plan.primary, "primary"), *((g, "guest") for g in plan.guest_disks)]


def _physical(plan: Plan) -> list[tuple[DiskPlan, str]]:
    """The disks there are before anything is written, with the role each is checked for."""
    if plan.raid is None:
        return _with_roles(plan)
    members = [(m, "RAID member") for m in plan.raid.members]
    return [*members, *((g, "guest") for g in plan.guest_disks)]


def _check_free(device: str) -> None:
    """The array's name must be free: ``mdadm --create`` fails on a running one, and it would
    fail after the members were wiped."""
    state = mdadm.state(device)
    if state not in (None, "clear"):
        raise guards.GuardError(
            device,
            "in-use",
            f"{device} is already an md array here ({state}); stop it (mdadm --stop {device}) "
            'or name another device in <raid device="...">',
        )


def _make_array(raid: RaidPlan, say: Progress) -> mdadm.Array:
    """Mirror the wiped members, then hold the array to the plan: its size is the one the
    layout was made for, and its data starts at each member's first sector, where the firmware
    looks for the partition table and the boot code."""
    members = [m.disk.path for m in raid.members]
    say(f"making RAID1 {raid.device} (md metadata {mdadm.METADATA}) of {', '.join(members)}")
    array = mdadm.create_mirror(
        raid.device, members, size_bytes=raid.size_bytes, homehost=raid.homehost
    )
    nodes.settle()
    found = (array.level, array.metadata, array.size_bytes, sorted(array.members))
    if found != ("raid1", mdadm.METADATA, raid.size_bytes, sorted(members)):
        raise mdadm.RaidError(
            f"{raid.device} is not the planned mirror: mdadm made {array.level} metadata "
            f"{array.metadata} of {', '.join(array.members) or 'no members'} with "
            f"{array.size_bytes} bytes; the plan wants raid1 metadata {mdadm.METADATA} of "
            f"{', '.join(members)} with {raid.size_bytes} bytes"
        )
    for member in members:
        offset = mdadm.data_offset_bytes(raid.device, member)
        if offset:
            raise mdadm.RaidError(
                f"{raid.device} keeps its data {offset} bytes into {member}, not from its "
                "first sector: the firmware would find no partition table or boot code there"
            )
    return array


def _recheck(disk_plan: DiskPlan, role: str, installer_disks: tuple[str, ...]) -> None:
    current = describe_disk(disk_plan.disk.path)
    guards.check_unchanged(disk_plan.identity, current.identity)
    guards.check_target(
        current,
        role=role,
        named_by_stable_id=disk_plan.named_by_stable_id,
        installer_disks=installer_disks,
    )
    for spec in disk_plan.partitions:
        if spec.preserve:
            found = current.partition(spec.number)
            if found is None or found.start != spec.start or (found.size_bytes != spec.size_bytes):
                raise guards.GuardError(
                    current.path,
                    "identity-changed",
                    f"{current.path} changed since the plan was made: the preserved partition "
                    f"{spec.number} is gone or moved; plan again",
                )


def _preserved(disk_plan: DiskPlan) -> PartitionSpec | None:
    return next((p for p in disk_plan.partitions if p.preserve), None)


def _clear(disk_plan: DiskPlan) -> None:
    """Wipe old partitions' signatures, make the kernel forget them, then wipe the disk."""
    path = disk_plan.disk.path
    keep = _preserved(disk_plan)
    table = sfdisk.read(path)
    old = [e.number for e in table.entries] if table else []
    found = nodes.add_partitions(path, old)
    for number, node in found.items():
        if keep is None or number != keep.number:
            wipe.wipe(node)
    nodes.forget_partitions(path)
    # A kept partition may start inside the first MiB (sector 63 on old MBR disks): the disk's
    # edges are then left to wipefs alone.
    wipe.wipe(
        path,
        keep_tables=keep is not None and table is not None and table.label == "gpt",
        edges=keep is None,
    )


def _write_table(disk_plan: DiskPlan) -> None:
    path = disk_plan.disk.path
    keep = _preserved(disk_plan)
    try:
        device = _fresh_device(path)
    except (_ped.IOException, _ped.DeviceException) as exc:
        raise FailedError(f"libparted cannot open {path}: {exc}") from exc
    said: list[str] = []
    try:
        with _fixing_what_libparted_asks(said):
            _build_table(disk_plan, device, keep).commit()
    except (
        parted.PartedException,
        _ped.PartedException,
        _ped.IOException,
        _ped.DiskException,
        _ped.PartitionException,
    ) as exc:
        asked = f" (libparted said: {' / '.join(said)})" if said else ""
        raise FailedError(f"writing the partition table of {path} failed: {exc}{asked}") from exc
    finally:
        device.removeFromCache()


def _build_table(
    disk_plan: DiskPlan, device: parted.Device, keep: PartitionSpec | None
) -> parted.Disk:
    """A kept GPT keeps its utility entry untouched (type, GUID, name); otherwise a new GPT."""
    table = sfdisk.read(device.path) if keep is not None else None
    if keep is not None and table is not None and table.label == "gpt":
        disk = parted.newDisk(device)
        for part in list(disk.partitions):
            if part.number != keep.number:
                disk.deletePartition(part)
    else:
        disk = parted.freshDisk(device, "gpt")
        if keep is not None:
            _add(disk, device, replace(keep, flag="msftdata"))
    _add_in_number_order(disk, device, [p for p in disk_plan.partitions if not p.preserve])
    return disk


@contextlib.contextmanager
def _fixing_what_libparted_asks(said: list[str]) -> Iterator[None]:
    """libparted asks questions through a callback; pyparted answers none by default. On a
    disk that grew (a kept GPT whose backup is not at the end) the answer is Fix: move the
    backup to the end and use the whole disk. Any other question cancels, and is reported."""

    def answer(_kind: int, options: int, message: str) -> int:
        said.append(" ".join(message.split()))
        if options & _ped.EXCEPTION_RESOLVE_FIX:
            return _ped.EXCEPTION_RESOLVE_FIX
        return _ped.EXCEPTION_RESOLVE_CANCEL

    _ped.register_exn_handler(answer)
    try:
        yield
    finally:
        _ped.clear_exn_handler()


def _fresh_device(path: str) -> parted.Device:
    """libparted caches devices by path, with their size: a loop device re-bound to another
    image would keep the old one's geometry, so drop any cached entry first."""
    parted.getDevice(path).removeFromCache()
    return parted.getDevice(path)


def _add_in_number_order(
    disk: parted.Disk, device: parted.Device, specs: list[PartitionSpec]
) -> None:
    """libparted numbers a GPT partition with the lowest free number and offers no setter, so
    we add in number order, holding a gap (no SR: 1, 2, 3, 5, 6) with a placeholder removed
    before the commit."""
    if not specs:
        return
    wanted = {s.number: s for s in specs}
    placeholders = []
    mib = (1 << 20) // device.sectorSize
    spare = max(s.end for s in specs) + 1
    for number in range(1, max(wanted) + 1):
        if _has(disk, number):
            continue
        if number in wanted:
            _add(disk, device, wanted[number])
        else:
            start = -(-spare // mib) * mib
            placeholders.append(
                _add(
                    disk,
                    device,
                    PartitionSpec(
                        number,
                        "placeholder",
                        start,
                        start + mib - 1,
                        device.sectorSize,
                        "",
                        None,
                        "",
                    ),
                )
            )
            spare = start + mib
    for part in placeholders:
        disk.deletePartition(part)


def _has(disk: parted.Disk, number: int) -> bool:
    return any(p.number == number for p in disk.partitions)


def _add(disk: parted.Disk, device: parted.Device, spec: PartitionSpec) -> parted.Partition:
    geometry = parted.Geometry(device=device, start=spec.start, end=spec.end)
    part = parted.Partition(disk=disk, type=parted.PARTITION_NORMAL, geometry=geometry)
    disk.addPartition(part, parted.Constraint(exactGeom=geometry))
    if (
        part.number != spec.number
        or part.geometry.start != spec.start
        or (part.geometry.end != spec.end)
    ):
        raise FailedError(
            f"libparted placed partition {spec.role} as number {part.number} at sectors "
            f"{part.geometry.start}-{part.geometry.end}, not {spec.number} at "
            f"{spec.start}-{spec.end}"
        )
    if spec.name:
        part.set_name(spec.name)
    if spec.flag:
        part.setFlag(_ped.partition_flag_get_by_name(spec.flag))
    return part
