"""Discovery on this machine: no udev daemon runs here, so facts come from sysfs and the disks
themselves, and what is missing is listed rather than fatal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pyudev
from support.loopdisk import GIB, loop_image, write_zfs_label

from answerfiles.model import AnswerFile, PrimaryDisk
from installer.discovery import (
    Hardware,
    NotADiskError,
    describe_disk,
    discover,
    installer_disks,
)
from installer.partition import apply_plan
from installer.plan import BootMode, make_plan

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


def udev_running() -> bool:
    return Path("/run/udev/control").exists() and subprocess.run(
        ["udevadm", "control", "--ping"], capture_output=True, check=False).returncode == 0


def test_nics_are_found_with_mac_and_no_loopback():
    hardware = discover()
    names = [nic.name for nic in hardware.nics]
    assert "lo" not in names
    sysfs = sorted(n for n in os.listdir("/sys/class/net") if n != "lo")
    assert names == sysfs
    for nic in hardware.nics:
        assert nic.mac == Path(f"/sys/class/net/{nic.name}/address").read_text().strip()
        assert nic.speed_mbps is None or nic.speed_mbps > 0


@pytest.mark.skipif(udev_running(), reason="a udev daemon runs: its facts are not missing")
def test_without_udevd_missing_facts_are_listed_not_fatal():
    hardware = discover()
    context = pyudev.Context()
    for disk in hardware.disks:
        assert not pyudev.Devices.from_name(context, "block", disk.name).is_initialized
        assert any(f.startswith(f"{disk.name}: no udev database") for f in hardware.missing_facts)
        assert disk.size_bytes > 0 and disk.bus is not None


@root_only
def test_loop_disk_described_after_partitioning(tmp_path: Path):
    image = tmp_path / "d.img"
    with loop_image(image, 60 * GIB) as device:
        plan = make_plan(AnswerFile(primary_disk=PrimaryDisk(device)),
                         Hardware((describe_disk(device),)), BootMode.UEFI, suffix="qwerty")
        apply_plan(plan)
        disk = describe_disk(device)
        assert (disk.path, disk.size_bytes, disk.table) == (device, 60 * GIB, "gpt")
        assert disk.backing_file == str(image)
        assert disk.identity.backing_file == str(image)
        assert disk.logical_sector == 512 and not disk.removable and disk.bus is None
        assert set(disk.signatures) == {"gpt", "PMBR"}
        by_number = {p.number: p for p in disk.partitions}
        assert sorted(by_number) == [1, 2, 3, 4, 5, 6]
        assert (by_number[1].fstype, by_number[1].label, by_number[1].name) == (
            "ext3", "root-qwerty", "root")
        assert (by_number[4].fstype, by_number[4].label) == ("vfat", "BOOT-QWERTY")
        assert by_number[3].fstype is None and by_number[3].start == plan.partition("sr").start
        with pytest.raises(NotADiskError, match="partition"):
            describe_disk(f"{device}p1")

        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "ext3", f"{device}p1", str(mnt)], check=True)
        try:
            assert describe_disk(device).partition(1).mountpoints == (str(mnt),)
            (mnt / "installer").write_text("x")
            own = installer_disks(str(mnt / "installer"))
            assert own[0] == device and len(own) == 2  # the loop device, then its image's disk
        finally:
            subprocess.run(["umount", str(mnt)], check=True)

        write_zfs_label(f"{device}p5", 4 * GIB)
        assert describe_disk(device).partition(5).fstype == "ext3+zfs_member"


def test_not_a_block_device_is_refused(tmp_path: Path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(NotADiskError, match="not a block device") as err:
        describe_disk(str(path))
    assert err.value.exit_code == 2
    with pytest.raises(NotADiskError, match="no such device"):
        describe_disk("/dev/does-not-exist")
