"""XAPI's join checks: each mismatch is one clear reason; force skips only the CPU vendor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pxe.pools import JoinFacts, check_join

MASTER = JoinFacts(
    xen_version="4.17.5",
    dom0_release="8.3.0",
    cpu_vendor="GenuineIntel",
    network_backend="openvswitch",
    management_ip="192.0.2.10",
    management_vlan=0,
)


def test_identical_hosts_join() -> None:
    joiner = replace(MASTER, management_ip="192.0.2.11")
    assert check_join(MASTER, joiner, force=False) == []


def test_case_of_vendor_and_backend_does_not_matter() -> None:
    joiner = replace(MASTER, cpu_vendor="genuineintel", network_backend="OpenVSwitch")
    assert check_join(MASTER, joiner, force=False) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"xen_version": "4.17.4"}, ["Xen version 4.17.4", "4.17.5"]),
        ({"dom0_release": "8.2.1"}, ["Dom0 release 8.2.1", "8.3.0"]),
        ({"cpu_vendor": "AuthenticAMD"}, ["CPU vendor AuthenticAMD", "GenuineIntel", "force"]),
        ({"network_backend": "bridge"}, ["Network backend bridge", "openvswitch"]),
        ({"management_vlan": 42}, ["VLAN 42", "untagged"]),
        ({"management_ip": "2001:db8::11"}, ["IPv6", "IPv4", "2001:db8::11"]),
    ],
)
def test_each_mismatch_is_one_reason_naming_both_values(
    change: dict[str, object], words: list[str]
) -> None:
    reasons = check_join(MASTER, replace(MASTER, **change), force=False)
    assert len(reasons) == 1
    for word in words:
        assert word in reasons[0]
    assert reasons[0].endswith(".")


def test_force_skips_only_the_cpu_vendor() -> None:
    amd = replace(MASTER, cpu_vendor="AuthenticAMD")
    assert check_join(MASTER, amd, force=True) == []
    everything = replace(
        amd,
        xen_version="4.18.0",
        dom0_release="8.2.1",
        network_backend="bridge",
        management_vlan=7,
        management_ip="2001:db8::5",
    )
    forced = check_join(MASTER, everything, force=True)
    assert len(forced) == 5
    assert not any("CPU vendor" in reason for reason in forced)
    assert len(check_join(MASTER, everything, force=False)) == 6


def test_from_mapping_reads_stored_facts_and_treats_missing_vlan_as_untagged() -> None:
    facts = {
        "xen_version": "4.17.5",
        "dom0_release": "8.3.0",
        "cpu_vendor": "GenuineIntel",
        "network_backend": "openvswitch",
        "management_ip": "192.0.2.12/24",
        "management_vlan": None,
        "cores": 8,
    }
    joiner = JoinFacts.from_mapping(facts)
    assert joiner.management_vlan == 0
    assert joiner.address_family == "IPv4"
    assert check_join(MASTER, joiner, force=False) == []
