"""The checks XAPI makes before a host joins a pool, as a pure function.

XCP-ng admins join hosts by hand with ``xe pool-join``, which refuses a joiner whose software or
hardware differs from the master's. We join at provisioning time, so we refuse in the same cases
and say why, before the host is told to join: a refusal recorded here is one the admin would
otherwise meet later at the console. Only the checks that make sense for a freshly installed host
are here (it has no VMs, SRs, bonds or HA yet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UNTAGGED = 0


@dataclass(frozen=True)
class JoinFacts:
    """What XAPI compares between a master and a joiner."""

    xen_version: str
    dom0_release: str
    cpu_vendor: str
    network_backend: str
    management_ip: str
    management_vlan: int = UNTAGGED

    @classmethod
    def from_mapping(cls, facts: Mapping[str, Any]) -> JoinFacts:
        """Build from a stored facts document (the JSON a host reported)."""
        return cls(
            xen_version=str(facts["xen_version"]),
            dom0_release=str(facts["dom0_release"]),
            cpu_vendor=str(facts["cpu_vendor"]),
            network_backend=str(facts["network_backend"]),
            management_ip=str(facts["management_ip"]),
            management_vlan=int(facts.get("management_vlan") or UNTAGGED),
        )

    @property
    def address_family(self) -> str:
        version = ipaddress.ip_interface(self.management_ip).version
        return f"IPv{version}"


def _vlan(tag: int) -> str:
    return "untagged" if tag == UNTAGGED else f"VLAN {tag}"


def check_join(master_facts: JoinFacts, joiner_facts: JoinFacts, *, force: bool) -> list[str]:
    """Return why ``joiner_facts`` may not join the pool whose master has ``master_facts``.

    An empty list admits the joiner. ``force`` skips the CPU-vendor check and nothing else, as
    ``xe pool-join force=true`` does: a heterogeneous CPU pool is a choice an admin can make,
    mismatched software never works.
    """
    master, joiner = master_facts, joiner_facts
    reasons: list[str] = []
    if joiner.xen_version != master.xen_version:
        reasons.append(
            f"Xen version {joiner.xen_version} differs from the master's {master.xen_version}."
        )
    if joiner.dom0_release != master.dom0_release:
        reasons.append(
            f"dom0 release {joiner.dom0_release} differs from the master's {master.dom0_release}."
        )
    if not force and joiner.cpu_vendor.casefold() != master.cpu_vendor.casefold():
        reasons.append(
            f"CPU vendor {joiner.cpu_vendor} differs from the master's {master.cpu_vendor} "
            "(set force on the pool to allow mixed CPU vendors)."
        )
    if joiner.network_backend.casefold() != master.network_backend.casefold():
        reasons.append(
            f"network backend {joiner.network_backend} differs from the master's "
            f"{master.network_backend}."
        )
    if joiner.management_vlan != master.management_vlan:
        reasons.append(
            f"management interface is {_vlan(joiner.management_vlan)}, the master's is "
            f"{_vlan(master.management_vlan)}."
        )
    if joiner.address_family != master.address_family:
        reasons.append(
            f"management address {joiner.management_ip} is {joiner.address_family}, the "
            f"master's {master.management_ip} is {master.address_family}."
        )
    return [reason[0].upper() + reason[1:] for reason in reasons]
