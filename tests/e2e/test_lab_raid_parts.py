"""The RAID lab's parts that need no VM: the answer file its profile gives each VM, the second
disk's QEMU arguments, and its report (test_lab_raid.py runs the whole lab)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from answerfiles.parse import parse_answerfile
from answerfiles.render import render_template
from installer.discovery import Disk, Hardware
from installer.plan import BootMode, make_plan
from lab import qemu
from lab.harness import Check
from lab.netns import LabNetwork
from lab.raid import RAID_DEVICE, RAID_TEMPLATE, DegradedBoot, RaidReport, raid_profile

GIB = 1 << 30


@pytest.mark.parametrize(("bus", "disks"), [("virtio", ("vda", "vdb")), ("sata", ("sda", "sdb"))])
def test_the_profile_gives_each_vm_a_raid1_of_its_two_disks(
    tmp_path: Path, bus: str, disks: tuple[str, str]
) -> None:
    template = tmp_path / "raid.xml.j2"
    template.write_text(RAID_TEMPLATE)
    profile = raid_profile(bus)
    variables = {
        **profile["variables"],
        "primary_disk": profile["disk_rule"]["disk"],
        "source_url": "http://10.99.0.1:8080/releases/lab/",
        "mac": "52:54:00:00:00:01",
        "hostname": "lab-vm1",
        "server_url": "http://10.99.0.1:8080",
        "token": "xpi_token",
        "pool": "lab",
    }
    answers = parse_answerfile(render_template(str(template), variables, host="lab-vm1")).answers
    assert answers.raid is not None
    assert (answers.raid.device, answers.raid.disks) == (RAID_DEVICE, disks)
    assert answers.primary_disk is not None and answers.primary_disk.disk == RAID_DEVICE
    hardware = Hardware(tuple(Disk(name=n, path=f"/dev/{n}", size_bytes=60 * GIB) for n in disks))
    make_plan(answers, hardware, BootMode.BIOS, suffix="abcdef")  # the installer takes it


def test_the_second_disk_is_on_the_first_ones_bus(tmp_path: Path) -> None:
    net = LabNetwork("xcplab-test", "br0", ipaddress.IPv4Network("10.99.0.0/24"))
    for bus, device in (("virtio", "virtio-blk-pci,drive=disk1"),
                        ("sata", "ide-hd,drive=disk1,bus=ahci0.1")):  # fmt: skip
        spec = qemu.VmSpec("lab-vm1", "52:54:00:00:00:01", "tap1", tmp_path, disk_bus=bus)
        extra = qemu.extra_disk_args(spec, 2)
        assert extra[-2:] == ["-device", device]
        assert extra[1].startswith(f"file={tmp_path / 'lab-vm1.disk2.qcow2'},format=qcow2,")
        argv = qemu.command(spec, net, 60, extra=extra)
        assert argv.count("-drive") == 2 and "id=disk0" in " ".join(argv)
        assert qemu.guest_disk_name(bus, 2) == ("vdb" if bus == "virtio" else "sdb")
    assert qemu.extra_disk(spec, 2).stat().st_size > 0  # a real qcow2 image, made once


def test_the_report_says_what_each_vm_did_with_one_disk(tmp_path: Path) -> None:
    boot = DegradedBoot("lab-vm1")
    boot.mark("xen", 41.04, "(XEN) Xen version 4.17")
    boot.mark("dom0-login", 95.0, "lab-vm1 login:")
    failed = Check("lab-vm1 reports its mirror degraded", False, "no health report")
    report = RaidReport(tmp_path, ok=False, failed_step=f"one disk: {failed.name}",
                        checks=[failed], degraded=[boot])  # fmt: skip
    text = report.summary()
    assert "  lab-vm1: xen 41.0, dom0-login 95.0, degraded-report -" in text
    assert "[FAIL] lab-vm1 reports its mirror degraded: no health report" in text
    assert text.rstrip().endswith(
        f"raid lab: FAIL at one disk: lab-vm1 reports its mirror degraded (results in {tmp_path})"
    )
    assert json.loads(report.to_json())["degraded"] == [
        {"vm": "lab-vm1", "seen": {"xen": 41.0, "dom0-login": 95.0},
         "evidence": {"xen": "(XEN) Xen version 4.17", "dom0-login": "lab-vm1 login:"}}
    ]  # fmt: skip
