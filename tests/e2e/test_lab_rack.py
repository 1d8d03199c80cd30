"""The rack lab for real, CI-sized: one BIOS and one UEFI VM, each with its own BMC (ipmi_sim),
powered on only through the server's API, installed into the pool, then reinstalled once by
one rolling reinstall (both at a time) through the API, with the harness touching no VM.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.harness import LabOptions
from lab.rack import RackOptions, run_rack
from lab.timeline import Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(7200)
def test_bios_and_uefi_vms_install_and_reinstall_through_their_bmcs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    options = RackOptions(
        LabOptions(results=results, firmwares=("bios", "uefi"), timeout=1800),
        reinstall=True,
        max_parallel=2,
    )
    report = run_rack(options, progress=lines.append)
    print(report.summary())
    assert report.ok, report.summary()
    for phase in (report.timelines, report.reinstall_timelines):
        assert [t.firmware for t in phase] == ["bios", "uefi"]
        for timeline in phase:
            assert timeline.first_missing() is None, timeline
            seen = timeline.seen
            assert 0 <= seen[Stage.DHCP] < seen[Stage.INSTALLER] < seen[Stage.XEN]
            assert seen[Stage.INSTALL_DONE] < seen[Stage.XEN] < seen[Stage.IN_POOL]
    assert report.roll["status"] == "done"
    assert sorted(report.roll["done"]) == ["lab-vm1", "lab-vm2"]
    steps = [s["step"] for s in report.roll["steps"]]
    assert steps.count("host-started") == 2 and steps[-1] == "finished"
    for check in report.checks:
        assert check.ok, check
    for vm in ("lab-vm1", "lab-vm2"):  # each BMC powered its VM on twice, network first
        actions = (results / f"{vm}.bmc" / "actions.log").read_text()
        assert actions.count("power on: boot device pxe") == 2, actions
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
