"""Partition device nodes, made explicitly.

The kernels we meet do not always scan partition tables themselves (loop devices without
``partscan``, reduced kernels such as the development machine's), so after writing a table the
installer tells the kernel about each partition (``partx --add``, the BLKPG ioctl) and waits until
the nodes exist. Where ``/dev`` is not a devtmpfs nobody creates the node files, so we make them
from the numbers sysfs gives.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import stat
import time
from pathlib import Path

from common.errors import CommandError
from common.runner import run
from installer.errors import FailedError

SYS_BLOCK = Path("/sys/class/block")
_BLKPG = 0x1269
_BLKPG_DEL_PARTITION = 2


class _BlkpgPartition(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_longlong),
        ("length", ctypes.c_longlong),
        ("pno", ctypes.c_int),
        ("devname", ctypes.c_char * 64),
        ("volname", ctypes.c_char * 64),
    ]


class _BlkpgIoctlArg(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_int),
        ("flags", ctypes.c_int),
        ("datalen", ctypes.c_int),
        ("data", ctypes.c_void_p),
    ]


def partition_path(disk: str, number: int) -> str:
    """``/dev/sda`` + 3 is ``/dev/sda3``; ``/dev/loop0`` or ``/dev/nvme0n1`` take a ``p``."""
    separator = "p" if disk[-1].isdigit() else ""
    return f"{disk}{separator}{number}"


def kernel_partitions(disk: str) -> dict[int, str]:
    """Partitions the kernel knows on ``disk`` (number -> sysfs name), whatever the table says."""
    name = Path(os.path.realpath(disk)).name
    found: dict[int, str] = {}
    base = SYS_BLOCK / name
    if not base.is_dir():
        return found
    for entry in base.iterdir():
        number_file = entry / "partition"
        if entry.name.startswith(name) and number_file.is_file():
            try:
                found[int(number_file.read_text())] = entry.name
            except OSError:  # the partition went away while we looked (a table re-read)
                continue
    return found


def forget_partitions(disk: str, *, busy_timeout: float = 10.0) -> None:
    """Drop every partition the kernel holds for ``disk`` (BLKPG), reading no table.

    Needed before detaching a loop device: partitions added by hand outlive the binding, and
    before writing a new table, so the kernel forgets the old geometry. The kernel refuses to
    drop a partition anyone has open, and udevd opens each partition we just wrote to (its
    inotify watch makes it probe the content again), so a busy partition is retried until
    ``busy_timeout`` has passed; one still busy then is mounted or held.
    """
    partitions = kernel_partitions(disk)
    if not partitions:
        return
    deadline = time.monotonic() + busy_timeout
    fd = os.open(disk, os.O_RDONLY)
    try:
        for number, name in sorted(partitions.items()):
            part = _BlkpgPartition(0, 0, number, b"", b"")
            arg = _BlkpgIoctlArg(
                _BLKPG_DEL_PARTITION,
                0,
                ctypes.sizeof(part),
                ctypes.cast(ctypes.pointer(part), ctypes.c_void_p),
            )
            while True:
                try:
                    fcntl.ioctl(fd, _BLKPG, arg)
                    break
                except OSError as exc:
                    if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                        settle()
                        time.sleep(0.1)
                        continue
                    raise FailedError(
                        f"the kernel refused to forget partition {name} of {disk} "
                        f"({exc.strerror}); is it mounted or in use?"
                    ) from exc
            _remove_stale_node(f"/dev/{name}")
    finally:
        os.close(fd)


def _remove_stale_node(path: str) -> None:
    """A node we made with mknod survives the partition; devtmpfs removes its own."""
    deadline = time.monotonic() + 1.0
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    if os.path.exists(path) and stat.S_ISBLK(os.lstat(path).st_mode):
        os.unlink(path)


def settle() -> None:
    """Let udevd finish the events of our own writes before touching partitions.

    udevd re-reads a disk's table when a writer closes it (the GPT just written, wipefs): that
    re-read drops and adds partitions under our feet. Without udevd this returns at once.
    """
    if shutil.which("udevadm"):
        run(["udevadm", "settle", "--timeout=30"], check=False)


def add_partitions(disk: str, numbers: list[int], *, timeout: float = 10.0) -> dict[int, str]:
    """Make the kernel see ``disk``'s table and return number -> node path once all exist."""
    settle()
    forget_partitions(disk)
    if numbers:
        added = run(["partx", "--add", disk], check=False)
        # A table re-read by udevd after settle() timed out may still add partitions first:
        # partx then fails (EBUSY) although they are the new table's (old ones were forgotten).
        if added.returncode != 0 and not set(numbers) <= set(kernel_partitions(disk)):
            raise CommandError(added.cmd, added.returncode, added.stderr, added.stdout)
    return wait_for_nodes(disk, numbers, timeout=timeout)


def wait_for_nodes(disk: str, numbers: list[int], *, timeout: float = 10.0) -> dict[int, str]:
    """Wait until each partition's node exists; make it from sysfs when nobody else does."""
    deadline = time.monotonic() + timeout
    nodes = {n: partition_path(os.path.realpath(disk), n) for n in numbers}
    while True:
        known = kernel_partitions(disk)
        missing = [n for n in numbers if n not in known]
        if not missing:
            for number, name in known.items():
                if number in nodes:
                    _ensure_node(name, nodes[number], deadline)
            return nodes
        if time.monotonic() > deadline:
            raise FailedError(
                f"partitions {missing} of {disk} did not appear within {timeout:.0f} s"
            )
        time.sleep(0.05)


def _ensure_node(sysfs_name: str, path: str, deadline: float) -> None:
    """Give devtmpfs or udev a second to make the node, then make it ourselves."""
    give_up = min(deadline, time.monotonic() + 1.0)
    while not os.path.exists(path):
        if time.monotonic() > give_up:
            major, minor = (SYS_BLOCK / sysfs_name / "dev").read_text().strip().split(":")
            os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(int(major), int(minor)))
            return
        time.sleep(0.02)
