"""The IPv6 lab for real: one BIOS VM network-boots and installs over IPv4 from a server known by
a dual-stack name, its dom0 comes up with an IPv6 address and no IPv4, registers over IPv6 and
joins the pool as master, and the site's BIND then holds its AAAA and ip6.arpa PTR. Once with the
profile's static address, once by SLAAC from the site's router advertisements (the prefix and the
VM MAC's EUI-64), once by DHCPv6 (an address nobody knew in advance: the registration key lets it
in).

Builds (or reuses from the cache) the real release; a cached run is one install and one Xen boot
under TCG (about ten minutes here) per addressing: collected only when named
(``tests/e2e/conftest.py``; ``-k autoconf`` picks one); ``make e2e-ipv6`` runs the same lab
through its command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab import qemu
from lab.harness import LabOptions
from lab.ipv6 import Addressing, management_address, run_ipv6
from lab.timeline import Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(5400)
@pytest.mark.parametrize("addressing", list(Addressing), ids=str)
def test_a_host_installed_over_ipv4_is_managed_over_ipv6_with_aaaa_and_ptr(
    tmp_path: Path, addressing: Addressing
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    options = LabOptions(results=results, timeout=2400)
    report = run_ipv6(options, progress=lines.append, addressing=addressing)
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
    # Without a static address the installer stayed on IPv4, so a rule other than the binding
    # (the MAC's EUI-64, the registration key) let dom0's registration in.
    bound = checks.get("lab-vm1 token bound to the lease")
    assert (bound is not None and bound.ok) is (addressing is not Addressing.STATIC), bound
    leased = checks.get("lab-vm1 DHCPv6 lease")
    assert (leased is not None and leased.ok) is (addressing is Addressing.DHCP), leased
    # The server wrote the AAAA over RFC 2136 (BIND logs each signed update it applies). The
    # lab's VM has this process's first MAC.
    # On DHCPv6 only the prefix is known in advance.
    address = management_address(addressing, qemu.mac_for(1)) or "fd00:99::"
    named_log = (results / "named" / "named.log").read_text()
    assert (
        f"updating zone 'lab.test/IN': adding an RR at 'lab-vm1.lab.test' AAAA {address}"
        in named_log
    )
    dnsmasq_log = (results / "dnsmasq.log").read_text()
    assert ("RTR-ADVERT(site0)" in dnsmasq_log) is (addressing is not Addressing.STATIC)
    assert ("DHCPREPLY(site0)" in dnsmasq_log) is (addressing is Addressing.DHCP)
    assert report.summary().endswith(f"ipv6 lab: PASS (results in {results.resolve()})")
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
