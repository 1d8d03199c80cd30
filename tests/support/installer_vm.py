"""One command of ours inside the real installer boot image, under QEMU, with disks attached.

The development machine's kernel has no md, no device-mapper, does not scan GPTs and cannot
mount vfat, so the disk work the installer does on a real host cannot all be watched here.
Debian's kernel in the installer image can: this boots that image (TCG, ``-kernel``/``-initrd``,
no network) with the caller's disk files as virtio disks and runs a shell script inside it.

The script travels on one more disk: a small ext4 image labelled with a random name, holding
``run`` and any files the caller adds. The kernel command line says ``xcp.run=LABEL``; the
image's ``/init`` mounts that filesystem read-only, runs ``./run`` from it with the console as
output, prints the exit status on a line of its own and powers off. Nothing else of the image's
boot changes, so the script meets the environment ``xcp-install`` meets (udevd running, modules
loaded). Every run is bounded: ``timeout`` kills QEMU however the test ends.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.runner import run, start
from images.bootimage.build import InstallerImage
from tests.images.vm import stop_vm

MIB = 1 << 20
# Where the image's /init mounts the files of a run (read-only) and runs ``run`` from.
WORKDIR = "/run/xcp-run"
QCOW2_MAGIC = b"QFI\xfb"
# The console turns "\n" into "\r\n"; QEMU's serial log keeps both.
_CRLF = re.compile(r"\r+\n")
_SERIAL_PREFIX = "xcp-disk"


class InstallerVmError(Exception):
    """The VM did not report an exit status: it crashed, hung, or never ran the command."""

    def __init__(self, reason: str, console: str) -> None:
        self.console = console
        super().__init__(f"{reason}; the console ended with:\n{console[-4000:]}")


@dataclass(frozen=True)
class VmResult:
    """What one run left: the command's status and output, and the disks to inspect."""

    exit_code: int
    output: str
    console: str
    disks: tuple[Path, ...]
    seconds: float


def disk_serial(index: int) -> str:
    """The virtio serial of the ``index``-th disk: ``/dev/disk/by-id/virtio-<serial>`` inside."""
    return f"{_SERIAL_PREFIX}{index}"


def blank_disk(path: Path, size_bytes: int, fmt: str = "raw") -> Path:
    """A new empty disk file: sparse raw (readable with the host's tools) or qcow2."""
    if fmt == "raw":
        with open(path, "wb") as fh:
            fh.truncate(size_bytes)
    elif fmt == "qcow2":
        run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(size_bytes)])
    else:
        raise ValueError(f"disk format {fmt!r}: raw or qcow2")
    return path


def _format(path: Path) -> str:
    with open(path, "rb") as fh:
        return "qcow2" if fh.read(4) == QCOW2_MAGIC else "raw"


def _payload(work: Path, label: str, command: str, files: Mapping[str, Path | bytes | str]) -> Path:
    """An ext4 image (no loop device, no mount: ``mkfs.ext4 -d``) with ``run`` and ``files``."""
    root = work / "payload"
    root.mkdir()
    script = root / "run"
    script.write_text("#!/bin/sh\n" + command + "\n")
    script.chmod(0o755)
    for name, content in files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"payload file {name!r}: a relative path inside the payload")
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if content.is_dir():
                shutil.copytree(content, target, symlinks=True)
            else:
                shutil.copy2(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    image = work / "payload.img"
    with open(image, "wb") as fh:
        fh.truncate(max(16 * MIB, used * 2 + 8 * MIB))
    run(["mkfs.ext4", "-q", "-O", "^has_journal", "-L", label, "-d", root, image])
    return image


def _between(console: str, label: str) -> tuple[int, str] | None:
    started = f"xcp-installer: xcp.run {label}: starting\n"
    ended = re.compile(
        rf"^xcp-installer: xcp\.run {re.escape(label)}: exited with status (\d+)$", re.M
    )
    found = list(ended.finditer(console))
    if not found:
        return None
    end = found[-1]
    begin = console.rfind(started, 0, end.start())
    output = console[begin + len(started) : end.start()] if begin >= 0 else ""
    return int(end.group(1)), output


def run_in_installer_vm(
    image: InstallerImage,
    disks: Sequence[Path],
    command: str,
    *,
    timeout: float = 300,
    files: Mapping[str, Path | bytes | str] | None = None,
    memory_mib: int = 1024,
) -> VmResult:
    """Boot ``image`` with ``disks`` (raw or qcow2, in order ``vda``, ``vdb``...; serials from
    :func:`disk_serial`), run the shell script ``command`` inside as root, and return its exit
    status and output once the VM powered off.

    ``command`` runs with a read-only working directory holding ``files`` (name -> host path,
    bytes or text); it writes under ``/tmp``. One more disk, after the caller's, carries them.
    Raises :class:`InstallerVmError` when no exit status came back within ``timeout`` seconds.
    ``memory_mib``: the unpacked image takes about 320 MiB of it.
    """
    label = "XRUN" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="installer-vm-") as tmp:
        work = Path(tmp)
        payload = _payload(work, label, command, files or {})
        serial = work / "console.log"
        drives: list[str] = []
        for index, disk in enumerate(disks):
            drives += [
                "-drive", f"file={disk},format={_format(disk)},if=none,id=disk{index}",
                "-device", f"virtio-blk-pci,drive=disk{index},serial={disk_serial(index)}",
            ]  # fmt: skip
        drives += [
            "-drive", f"file={payload},format=raw,if=none,id=payload,readonly=on",
            "-device", "virtio-blk-pci,drive=payload,serial=xcp-run",
        ]  # fmt: skip
        started = time.monotonic()
        proc = start(
            [
                "timeout", "--signal=KILL", str(int(timeout) + 5),
                "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", str(memory_mib),
                "-nodefaults", "-nographic", "-monitor", "none", "-serial", f"file:{serial}",
                "-no-reboot", "-net", "none", "-kernel", image.kernel, "-initrd", image.initrd,
                "-append", f"console=ttyS0 xcp.run={label}", *drives,
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            stderr = b""
        finally:
            stop_vm(proc)
        seconds = time.monotonic() - started
        console = _CRLF.sub("\n", serial.read_text(errors="replace")) if serial.exists() else ""
    found = _between(console, label)
    if found is None:
        if seconds >= timeout:
            why = f"no exit status within {timeout:.0f} s"
        elif proc.returncode == 0:
            why = "the VM stopped without reporting an exit status"
        else:
            why = f"QEMU exited with status {proc.returncode}: {stderr.decode(errors='replace')}"
        raise InstallerVmError(why, console)
    exit_code, output = found
    return VmResult(exit_code, output, console, tuple(disks), seconds)
