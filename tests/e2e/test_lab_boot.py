"""The whole chain, for real: one BIOS VM PXE-boots from ``serve``, installs, boots Xen, joins.

Builds (or reuses from the cache) the real release, so the first run on a machine takes as long
as the image builds; a cached run takes minutes under TCG.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.harness import LabOptions, run_lab
from lab.timeline import CHAIN, Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(7200)
def test_one_bios_vm_installs_boots_xen_and_joins_the_pool(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    report = run_lab(LabOptions(results=results, timeout=2400), progress=lines.append)
    print(report.summary())
    assert report.ok, report.summary()
    [timeline] = report.timelines
    assert timeline.first_missing() is None
    # dom0's login prompt and its first-boot registration race each other; all else is ordered.
    boot = [s for s in CHAIN if s not in (Stage.REGISTERED, Stage.IN_POOL)]
    times = [timeline.seen[stage] for stage in boot]
    assert times == sorted(times), f"stages out of order: {timeline.seen}"
    seen = timeline.seen
    assert seen[Stage.XEN] < seen[Stage.REGISTERED] <= seen[Stage.IN_POOL]
    assert timeline.evidence[Stage.XEN].startswith("(XEN)")
    for check in report.checks:
        assert check.ok, check
    # The installed dom0 runs Open vSwitch (the answer files' default) with its address on
    # xenbr0, as its first-boot agent found them running; the pool admitted it.
    [network] = [c for c in report.checks if c.name == "lab-vm1 management network"]
    assert " on xenbr0 with backend openvswitch;" in network.detail, network
    for name in ("lab-vm1.serial.log", "server.log", "dnsmasq.log", "report.json"):
        assert (results / name).stat().st_size > 0, name
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
