"""The IPv6 lab for real: one BIOS VM network-boots and installs over IPv4 from a server known by
a dual-stack name, its dom0 comes up with a static IPv6 address and no IPv4, registers over IPv6
and joins the pool as master, and the site's BIND then holds its AAAA and ip6.arpa PTR.

Builds (or reuses from the cache) the real release; a cached run is one install and one Xen boot
under TCG (about ten minutes here): collected only when named (``tests/e2e/conftest.py``);
``make e2e-ipv6`` runs the same lab through its command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.harness import LabOptions
from lab.ipv6 import HOST_IPV6, run_ipv6
from lab.timeline import Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(5400)
def test_a_host_installed_over_ipv4_is_managed_over_ipv6_with_aaaa_and_ptr(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    report = run_ipv6(LabOptions(results=results, timeout=2400), progress=lines.append)
    print("\n".join(lines))
    print(report.summary())
    assert report.ok, report.summary()
    [timeline] = report.timelines
    assert (
        timeline.seen[Stage.INSTALL_DONE] < timeline.seen[Stage.XEN] < timeline.seen[Stage.IN_POOL]
    )
    checks = {check.name: check for check in report.checks}
    ipv6_checks = ("management address", "IPv6 only", "server name resolved", "AAAA in BIND")
    for name in (*ipv6_checks, "PTR in BIND"):
        assert checks[f"lab-vm1 {name}"].ok, checks[f"lab-vm1 {name}"]
    # The server wrote the AAAA over RFC 2136 (BIND logs each signed update it applies).
    named_log = (results / "named" / "named.log").read_text()
    assert (
        f"updating zone 'lab.test/IN': adding an RR at 'lab-vm1.lab.test' AAAA {HOST_IPV6.ip}"
        in named_log
    )
    assert report.summary().endswith(f"ipv6 lab: PASS (results in {results.resolve()})")
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
