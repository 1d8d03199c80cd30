"""What hardware this host has: disks and NICs as value objects.

pyudev is the primary source (stable ``by-id``/``by-path`` links, serial, WWN, bus). Without a
udev daemon (containers, a minimal initrd, the development machine) the udev database is empty;
then we read what sysfs offers and list in ``Hardware.missing_facts`` what we could not learn,
instead of failing: the plan's guard rails treat a missing fact as "unknown", never as "safe".
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyudev

from common.errors import CommandError
from installer.block import blkid, loop, nodes, sfdisk, wipe
from installer.errors import RefusedError

SYS_CLASS_BLOCK = Path("/sys/class/block")
SYS_CLASS_NET = Path("/sys/class/net")
# Devices that are never an install target when we enumerate: images, RAM, optical, floppy,
# arrays and mappings (those are named explicitly when wanted, e.g. ``--target-disk``).
_NOT_DISKS = ("loop", "ram", "zram", "fd", "sr", "dm-", "md", "nbd")


@dataclass(frozen=True)
class DiskPartition:
    """One partition found on a disk, as its table and its content describe it."""

    number: int
    path: str
    start: int
    size_bytes: int
    type: str
    name: str
    fstype: str | None = None
    label: str | None = None
    holders: tuple[str, ...] = ()
    mountpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskIdentity:
    """What must not change between planning and writing (see ``installer.guards``)."""

    path: str
    serial: str | None
    wwn: str | None
    size_bytes: int
    backing_file: str | None


@dataclass(frozen=True)
class Disk:
    name: str
    path: str
    size_bytes: int
    by_id: tuple[str, ...] = ()
    by_path: tuple[str, ...] = ()
    wwn: str | None = None
    serial: str | None = None
    vendor: str | None = None
    model: str | None = None
    logical_sector: int = 512
    physical_sector: int = 512
    removable: bool = False
    bus: str | None = None
    rotational: bool | None = None
    read_only: bool = False
    holders: tuple[str, ...] = ()
    mountpoints: tuple[str, ...] = ()
    table: str | None = None
    signatures: tuple[str, ...] = ()
    partitions: tuple[DiskPartition, ...] = ()
    backing_file: str | None = None

    @property
    def identity(self) -> DiskIdentity:
        return DiskIdentity(self.path, self.serial, self.wwn, self.size_bytes, self.backing_file)

    @property
    def is_usb(self) -> bool:
        return self.bus == "usb"

    @property
    def all_holders(self) -> tuple[str, ...]:
        return self.holders + tuple(h for p in self.partitions for h in p.holders)

    @property
    def all_mountpoints(self) -> tuple[str, ...]:
        return self.mountpoints + tuple(m for p in self.partitions for m in p.mountpoints)

    @property
    def stable_paths(self) -> tuple[str, ...]:
        return self.by_id + self.by_path

    def partition(self, number: int) -> DiskPartition | None:
        return next((p for p in self.partitions if p.number == number), None)


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str | None
    driver: str | None
    link: bool
    speed_mbps: int | None


@dataclass(frozen=True)
class Hardware:
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...] = ()
    missing_facts: tuple[str, ...] = field(default=())

    def disk(self, path: str) -> Disk | None:
        return next((d for d in self.disks if d.path == path), None)


class NotADiskError(RefusedError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path} cannot be an install target: {reason}")


def discover(context: pyudev.Context | None = None) -> Hardware:
    """Every candidate disk and every NIC of this host."""
    context = context or pyudev.Context()
    disks: list[Disk] = []
    missing: list[str] = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        name = device.sys_name
        if name.startswith(_NOT_DISKS) or _sys_int(device, "size") == 0:
            continue
        disk, gaps = _describe(context, device)
        disks.append(disk)
        missing.extend(gaps)
    nics: list[Nic] = []
    for device in context.list_devices(subsystem="net"):
        if device.sys_name == "lo":
            continue
        nic, gaps = _nic(device)
        nics.append(nic)
        missing.extend(gaps)
    disks.sort(key=lambda d: d.name)
    nics.sort(key=lambda n: n.name)
    return Hardware(tuple(disks), tuple(nics), tuple(missing))


def describe_disk(path: str, context: pyudev.Context | None = None) -> Disk:
    """One whole block device, named by any path (``/dev/sda``, a by-id link, a loop device)."""
    return describe_disk_with_gaps(path, context)[0]


def describe_disk_with_gaps(
    path: str, context: pyudev.Context | None = None
) -> tuple[Disk, tuple[str, ...]]:
    """:func:`describe_disk` plus the facts that could not be learnt about it."""
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError as exc:
        raise NotADiskError(path, "no such device") from exc
    if not stat.S_ISBLK(mode):
        raise NotADiskError(path, "not a block device")
    name = Path(real).name
    if (SYS_CLASS_BLOCK / name / "partition").exists():
        raise NotADiskError(path, "it is a partition; name the whole disk")
    context = context or pyudev.Context()
    device = pyudev.Devices.from_name(context, "block", name)
    disk, gaps = _describe(context, device)
    return disk, tuple(gaps)


def _describe(context: pyudev.Context, device: pyudev.Device) -> tuple[Disk, list[str]]:
    name = device.sys_name
    path = f"/dev/{name}"
    props = device.properties
    udev = device.is_initialized
    gaps: list[str] = []
    links = tuple(device.device_links) if udev else _links_on_disk(path)
    by_id = tuple(sorted(link for link in links if "/by-id/" in link))
    by_path = tuple(sorted(link for link in links if "/by-path/" in link))
    sysdev = Path(device.sys_path) / "device"
    serial = (props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL")) if udev else None
    serial = serial or _read(sysdev / "serial") or _read(Path(device.sys_path) / "serial")
    wwn = (props.get("ID_WWN_WITH_EXTENSION") or props.get("ID_WWN")) if udev else None
    wwn = wwn or _read(sysdev / "wwid") or _read(Path(device.sys_path) / "wwid")
    vendor = (props.get("ID_VENDOR") if udev else None) or _read(sysdev / "vendor")
    model = (props.get("ID_MODEL") if udev else None) or _read(sysdev / "model")
    bus = props.get("ID_BUS") if udev else None
    bus = bus or _bus_from_sysfs(device.sys_path)
    if not udev:
        gaps.append(f"{name}: no udev database, so by-id/by-path links come only from "
                    "/dev/disk and the bus is guessed from sysfs")
        for fact, value in (("serial", serial), ("WWN", wwn)):
            if value is None:
                gaps.append(f"{name}: {fact} unknown (no udev database, none in sysfs)")
    rotational = _sys_int(device, "queue/rotational")
    try:
        signatures = tuple(sorted({s.type for s in wipe.signatures(path)}))
    except CommandError as exc:
        signatures = ()
        gaps.append(f"{name}: signatures unknown, the disk cannot be read ({exc.stderr.strip()})")
    table = sfdisk.read(path)
    partitions = _partitions(path, table)
    mounts = _mounts()
    return Disk(
        name=name,
        path=path,
        size_bytes=(_sys_int(device, "size") or 0) * 512,
        by_id=by_id,
        by_path=by_path,
        wwn=wwn,
        serial=serial,
        vendor=vendor,
        model=model,
        logical_sector=_sys_int(device, "queue/logical_block_size") or 512,
        physical_sector=_sys_int(device, "queue/physical_block_size") or 512,
        removable=_sys_int(device, "removable") == 1,
        bus=bus,
        rotational=None if rotational is None else rotational == 1,
        read_only=_sys_int(device, "ro") == 1,
        holders=_holders(name),
        mountpoints=tuple(mounts.get(_devnum(path), ())),
        table=table.label if table else None,
        signatures=signatures,
        partitions=tuple(_with_usage(p, mounts) for p in partitions),
        backing_file=loop.backing_file(path) if name.startswith("loop") else None,
    ), gaps


def _partitions(disk: str, table: sfdisk.Table | None) -> list[DiskPartition]:
    if table is None:
        return []
    known = nodes.kernel_partitions(disk)
    found = []
    for entry in table.entries:
        node = nodes.partition_path(disk, entry.number)
        content: dict[str, str] = {}
        if entry.number in known and os.path.exists(node):
            content = _content(node)
        found.append(
            DiskPartition(
                number=entry.number,
                path=node,
                start=entry.start,
                size_bytes=entry.size * table.sector_size,
                type=entry.type,
                name=entry.name,
                fstype=content.get("TYPE"),
                label=content.get("LABEL"),
                holders=_holders(known[entry.number]) if entry.number in known else (),
            )
        )
    return found


def _content(node: str) -> dict[str, str]:
    """What a partition holds; several stale signatures show as ``ext3+zfs_member``."""
    try:
        content = blkid.probe(node)
        if "AMBIVALENT" in content:
            content = {"TYPE": "+".join(sorted({s.type for s in wipe.signatures(node)}))}
    except CommandError:
        return {"TYPE": "unreadable"}
    return content


def _with_usage(part: DiskPartition, mounts: dict[int, list[str]]) -> DiskPartition:
    if not os.path.exists(part.path):
        return part
    return replace(part, mountpoints=tuple(mounts.get(_devnum(part.path), ())))


def _mounts() -> dict[int, list[str]]:
    """Device number -> where it is in use (mount points, ``[SWAP]``)."""
    found: dict[int, list[str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            major, minor = fields[2].split(":")
            source = fields[fields.index("-") + 2]
            numbers = {os.makedev(int(major), int(minor))}
            if source.startswith("/dev/"):
                numbers.add(_devnum(source))
            for number in numbers:
                found.setdefault(number, []).append(_unescape(fields[4]))
    with open("/proc/swaps", encoding="utf-8") as fh:
        for line in list(fh)[1:]:
            found.setdefault(_devnum(line.split()[0]), []).append("[SWAP]")
    return found


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def _devnum(path: str) -> int:
    try:
        st = os.stat(path)
    except OSError:
        return -1
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else -1


def _holders(name: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(SYS_CLASS_BLOCK / name / "holders")))
    except OSError:
        return ()


def _links_on_disk(path: str) -> tuple[str, ...]:
    """Links a udev daemon left in /dev/disk earlier (e.g. before the initrd switched root)."""
    found = []
    for kind in ("by-id", "by-path"):
        folder = Path("/dev/disk") / kind
        if folder.is_dir():
            found.extend(
                str(link) for link in folder.iterdir()
                if os.path.realpath(link) == path
            )
    return tuple(found)


def _bus_from_sysfs(sys_path: str) -> str | None:
    real = os.path.realpath(sys_path)
    for marker, bus in (("/usb", "usb"), ("/nvme", "nvme"), ("/virtio", "virtio"),
                        ("/ata", "ata"), ("/host", "scsi")):
        if marker in real:
            return bus
    return None


def _sys_int(device: pyudev.Device, attribute: str) -> int | None:
    try:
        return int(device.attributes.asstring(attribute).strip())
    except (KeyError, ValueError, OSError):
        return None


def _read(path: Path) -> str | None:
    try:
        value = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return value or None


def _nic(device: pyudev.Device) -> tuple[Nic, list[str]]:
    base = Path(device.sys_path)
    gaps = []
    driver_link = base / "device" / "driver"
    driver = device.properties.get("ID_NET_DRIVER") or (
        Path(os.path.realpath(driver_link)).name if driver_link.exists() else None
    )
    if driver is None and (base / "device").exists():
        gaps.append(f"{device.sys_name}: driver unknown")
    carrier = _read(base / "carrier")
    speed = _read(base / "speed")
    speed_mbps = int(speed) if speed and speed.lstrip("-").isdigit() and int(speed) > 0 else None
    return Nic(
        name=device.sys_name,
        mac=_read(base / "address"),
        driver=driver,
        link=carrier == "1",
        speed_mbps=speed_mbps,
    ), gaps


def installer_disks(anchor: str | None = None) -> tuple[str, ...]:
    """Every whole disk this installer runs from, innermost first; none may be a target.

    ``anchor`` defaults to this package's own file: its filesystem is the installer's medium
    (or the dev machine's root disk). A filesystem on a loop device is followed to the disk
    holding the image file: both the loop device and that disk are the installer's.
    Empty when the installer runs from RAM (tmpfs, an initramfs).
    """
    chain: list[str] = []
    path = anchor or __file__
    while len(chain) < 8:
        source = _mount_source(path)
        if source is None:
            break
        name = Path(os.path.realpath(source)).name
        if (SYS_CLASS_BLOCK / name / "partition").exists():
            name = Path(os.path.realpath(SYS_CLASS_BLOCK / name)).parent.name
        chain.append(f"/dev/{name}")
        backing = loop.backing_file(f"/dev/{name}") if name.startswith("loop") else None
        if backing is None:
            break
        path = backing
    return tuple(chain)


def _mount_source(path: str) -> str | None:
    """The block device mounted where ``path`` lives, from the longest matching mount point."""
    real = os.path.realpath(path)
    best: tuple[int, str | None] = (-1, None)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            point = _unescape(fields[4])
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) > best[0]:
                source = fields[fields.index("-") + 2]
                best = (len(point), source if source.startswith("/dev/") else None)
    return best[1]
