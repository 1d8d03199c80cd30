"""The ``installer_vm`` fixture itself: what a script does inside the installer image comes
back (status, output, writes to raw and qcow2 disks), and a VM that never reports is stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.installer_vm import WORKDIR, InstallerVmError, blank_disk, disk_serial

from common.runner import run

pytestmark = [pytest.mark.root, pytest.mark.slow]
MIB = 1 << 20
SCRIPT = r"""
echo "note: $(cat note.txt)"
echo "blob: $(od -An -tx1 data/blob.bin | tr -d ' ')"
echo "cwd: $PWD"
echo "options: $(awk -v dir="$PWD" '$2 == dir { print $4 }' /proc/mounts)"
for name in SERIALS; do echo "by-id $name: $(readlink /dev/disk/by-id/virtio-$name)"; done
printf 'written in the VM' > /dev/vda
printf 'qcow2 too' > /dev/vdb
sync
exit 7
""".replace("SERIALS", f"{disk_serial(0)} {disk_serial(1)}")


def test_status_output_and_disk_writes_come_back(installer_vm, tmp_path: Path) -> None:
    raw = blank_disk(tmp_path / "raw.img", 64 * MIB)
    qcow2 = blank_disk(tmp_path / "disk.qcow2", 64 * MIB, "qcow2")
    result = installer_vm(
        [raw, qcow2],
        SCRIPT,
        timeout=300,
        files={"note.txt": "from the host\n", "data/blob.bin": b"\x00\xff"},
    )
    assert result.exit_code == 7, result.console[-3000:]
    lines = result.output.splitlines()
    assert "note: from the host" in lines
    assert "blob: 00ff" in lines
    assert f"cwd: {WORKDIR}" in lines
    [options] = [line for line in lines if line.startswith("options: ")]
    assert "ro" in options.removeprefix("options: ").split(",")
    assert f"by-id {disk_serial(0)}: ../../vda" in lines
    assert f"by-id {disk_serial(1)}: ../../vdb" in lines
    assert result.disks == (raw, qcow2)
    assert raw.read_bytes()[:17] == b"written in the VM"
    converted = tmp_path / "converted.img"
    run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2, converted])
    assert converted.read_bytes()[:9] == b"qcow2 too"


def test_a_vm_that_never_reports_is_stopped_at_its_timeout(installer_vm) -> None:
    started = time.monotonic()
    with pytest.raises(InstallerVmError, match="no exit status within 5 s"):
        installer_vm([], "sleep 600", timeout=5)
    assert time.monotonic() - started < 60
