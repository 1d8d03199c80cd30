"""The RAID lab for real: one BIOS VM with two disks installs onto a software RAID1 of both,
joins the pool and reports its mirror; then it loses its second disk, and must boot Xen and dom0
from the first alone and report the mirror degraded (a warning event on the server).

Builds (or reuses from the cache) the real release, so the first run on a machine takes as long
as the image builds; a cached run takes two boots of the installed host under TCG beyond the
plain lab's (``make e2e-raid``; part of ``make e2e-all``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.harness import LabOptions
from lab.raid import PROOFS, run_raid
from lab.timeline import Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(7200)
def test_a_vm_on_a_mirror_loses_a_disk_boots_and_reports_it_degraded(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    report = run_raid(LabOptions(results=results, timeout=2400), progress=lines.append)
    print("\n".join(lines))
    print(report.summary())
    assert report.ok, report.summary()
    [timeline] = report.timelines
    assert timeline.first_missing() is None
    seen = timeline.seen
    assert seen[Stage.INSTALL_DONE] < seen[Stage.XEN] < seen[Stage.IN_POOL]
    [boot] = report.degraded
    assert set(boot.seen) == set(PROOFS), boot
    assert boot.seen["xen"] < boot.seen["dom0-login"]
    assert boot.evidence["xen"].startswith("(XEN)")
    for check in report.checks:
        assert check.ok, check
    names = [check.name for check in report.checks]
    assert "lab-vm1 reports its mirror" in names
    assert "lab-vm1 reports its mirror degraded" in names
    for name in ("lab-vm1.serial.log", "server.log", "report.json", "summary.txt"):
        assert (results / name).stat().st_size > 0, name
    assert "with one disk" in (results / "summary.txt").read_text()
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
