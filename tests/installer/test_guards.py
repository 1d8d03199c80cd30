"""Each guard rail on real loop devices: exit 2 (or RefusedError), and not one byte written.

Removable/USB disks and holders (md, LVM, device-mapper) cannot be made on this machine (loop
devices are never removable; no md or dm driver): those rules are covered with Disk values in
test_plan.py, and apply_plan runs the very same checks.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.loopdisk import GIB, content_hash, loop_image, sparse_image, sync

from answerfiles.model import AnswerFile, PrimaryDisk
from common import runner
from common.errors import CommandForbiddenError
from installer.cli.main import main
from installer.discovery import Hardware, describe_disk
from installer.guards import GuardError
from installer.partition import apply_plan
from installer.plan import BootMode, make_plan

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
]

ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <primary-disk>sda</primary-disk>
  <source type="url">http://example.invalid/xcp/</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""
READ_ONLY_COMMANDS = {("sfdisk", "--json"), ("wipefs", "--json"), ("blkid", "--probe"),
                      ("losetup", "--find"), ("losetup", "--detach"), ("partx", "--add"),
                      ("udevadm", "settle")}


def only_reads(argv: list[str]) -> None:
    """Refusals may look at disks (and attach/detach an image) but never write to one."""
    if (Path(argv[0]).name, argv[1] if len(argv) > 1 else "") not in READ_ONLY_COMMANDS:
        raise CommandForbiddenError(argv)


def refused(*args: str, answerfile: str) -> str:
    with runner.guarded(only_reads):
        result = CliRunner().invoke(main, [*args, "--answerfile", answerfile],
                                    catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "refused:" in result.output
    return result.output


@pytest.fixture
def answers_path(tmp_path: Path) -> str:
    path = tmp_path / "answerfile.xml"
    path.write_text(ANSWERFILE)
    return str(path)


def test_too_small_disk_is_refused_with_minimum_and_size(tmp_path: Path, answers_path: str):
    image = sparse_image(tmp_path / "small.img", 40 * GIB)
    before = content_hash(image)
    for command in ("plan", "partition"):
        output = refused(command, "--target-disk", str(image), answerfile=answers_path)
        assert "46 GiB" in output and "40.0 GiB" in output
    assert content_hash(image) == before


def test_disk_with_a_mounted_partition_is_refused(tmp_path: Path, answers_path: str):
    with loop_image(tmp_path / "busy.img", 60 * GIB) as device:
        subprocess.run(["sgdisk", "-n1:2048:+1G", "-n2:0:+1G", device], check=True,
                       capture_output=True)
        subprocess.run(["partx", "--add", device], check=True)
        subprocess.run(["mkfs.ext4", "-q", f"{device}p2"], check=True)
        sync(device)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", "-o", "ro,noload", f"{device}p2", str(mnt)], check=True)
        try:
            before = content_hash(tmp_path / "busy.img")
            output = refused("partition", "--target-disk", device, answerfile=answers_path)
            assert "mounted" in output and str(mnt) in output
            assert content_hash(tmp_path / "busy.img") == before
        finally:
            subprocess.run(["umount", str(mnt)], check=True)


def test_identity_changed_between_plan_and_apply(tmp_path: Path):
    image = tmp_path / "grown.img"
    with loop_image(image, 60 * GIB) as device:
        answers = AnswerFile(primary_disk=PrimaryDisk(device))
        plan = make_plan(answers, Hardware((describe_disk(device),)), BootMode.UEFI)
        os.truncate(image, 61 * GIB)
        subprocess.run(["losetup", "--set-capacity", device], check=True)
        before = content_hash(image)
        with pytest.raises(GuardError) as err:
            apply_plan(plan)
        assert err.value.rule == "identity-changed" and err.value.exit_code == 2
        assert "size" in str(err.value) and "plan again" in str(err.value)
        sync(device)
        assert content_hash(image) == before


def test_installer_disk_is_refused_at_plan_and_again_at_apply(tmp_path: Path):
    image = tmp_path / "self.img"
    with loop_image(image, 60 * GIB) as device:
        answers = AnswerFile(primary_disk=PrimaryDisk(device))
        hardware = Hardware((describe_disk(device),))
        before = content_hash(image)
        with pytest.raises(GuardError) as err:
            make_plan(answers, hardware, BootMode.BIOS, installer_disk=device)
        assert err.value.rule == "installer-disk"
        plan = make_plan(answers, hardware, BootMode.BIOS)
        with pytest.raises(GuardError) as err:
            apply_plan(dataclasses.replace(plan, installer_disks=(device,)))
        assert err.value.rule == "installer-disk"
        sync(device)
        assert content_hash(image) == before


def test_the_disk_this_installer_runs_from_is_refused(answers_path: str):
    """The development machine's own root disk: refused before anything could touch it."""
    root = os.stat("/").st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(root)}:{os.minor(root)}")
    if not sysfs.exists():
        pytest.skip("the root filesystem is not on a block device here")
    name = Path(os.path.realpath(sysfs)).name
    if (sysfs / "partition").exists():
        name = Path(os.path.realpath(sysfs)).parent.name
    output = refused("partition", "--target-disk", f"/dev/{name}", answerfile=answers_path)
    assert "running from" in output


def test_invalid_answer_file_and_partition_target_are_refused(tmp_path: Path,
                                                              answers_path: str):
    bad = tmp_path / "bad.xml"
    bad.write_text("<installation><primary-disk>sda</primary-disk></installation>")
    with loop_image(tmp_path / "d.img", 60 * GIB) as device:
        subprocess.run(["sgdisk", "-n1:2048:+1G", device], check=True, capture_output=True)
        subprocess.run(["partx", "--add", device], check=True)
        sync(device)
        before = content_hash(tmp_path / "d.img")
        output = refused("partition", "--target-disk", device, answerfile=str(bad))
        assert "answer file" in output
        output = refused("partition", "--target-disk", f"{device}p1", answerfile=answers_path)
        assert "partition; name the whole disk" in output
        assert content_hash(tmp_path / "d.img") == before


def test_preserved_partition_moved_between_plan_and_apply(tmp_path: Path):
    image = tmp_path / "util.img"
    with loop_image(image, 60 * GIB) as device:
        subprocess.run(["sgdisk", "-n1:2048:+64M", "-c1:DELLUTILITY", device], check=True,
                       capture_output=True)
        answers = AnswerFile(primary_disk=PrimaryDisk(device))
        plan = make_plan(answers, Hardware((describe_disk(device),)), BootMode.UEFI)
        assert plan.partition("utility").preserve
        subprocess.run(["sgdisk", "-d1", "-n1:4096:+64M", "-c1:DELLUTILITY", device],
                       check=True, capture_output=True)
        sync(device)
        before = content_hash(image)
        with pytest.raises(GuardError, match="preserved partition 1") as err:
            apply_plan(plan)
        assert err.value.rule == "identity-changed"
        sync(device)
        assert content_hash(image) == before
