"""The installed dom0's management network: the NIC on a bridge ``xenbr0``, as on XCP-ng.

XCP-ng puts the management NIC on a bridge named ``xenbr0`` (Open vSwitch by default, a Linux
bridge with ``<network-backend>bridge``) and gives the address to the bridge, where guests' vifs
join the same network. dom0 here is Debian with ifupdown: Debian's openvswitch-switch makes OVS
bridges and ports from ``ovs_type`` stanzas (its if-pre-up.d hook), bridge-utils makes Linux
bridges from ``bridge_ports`` stanzas. Xen's toolstack is told the same bridge and the vif script
of the same backend in ``/etc/xen/xl.conf``.

The bridge carries the NIC's MAC: dhclient sends 01 + its interface's MAC as client identifier,
so DHCP sees the same client as the firmware and the installer did, and the registration's MAC
check matches. A VLAN is a Linux VLAN device on the bridge (``xenbr0.<tag>``), which ifupdown
makes from the name; both bridges pass tagged frames between it and the NIC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from answerfiles.model import AdminInterface, NetworkBackend, Proto, ProtoV6

BRIDGE = "xenbr0"
XL_CONF = "/etc/xen/xl.conf"
VIF_SCRIPTS = {
    NetworkBackend.OPENVSWITCH: "vif-openvswitch",
    NetworkBackend.BRIDGE: "vif-bridge",
}
_BACKEND_NAMES = {
    NetworkBackend.OPENVSWITCH: "the Open vSwitch bridge",
    NetworkBackend.BRIDGE: "the Linux bridge",
}


@dataclass(frozen=True)
class ManagementNetwork:
    """The management NIC, what the answer file asks of it, and the bridge it goes on."""

    admin: AdminInterface
    nic: str
    mac: str | None
    backend: NetworkBackend

    @property
    def device(self) -> str:
        """The interface holding the management address: the bridge or its VLAN device."""
        return f"{BRIDGE}.{self.admin.vlan}" if self.admin.vlan else BRIDGE


def interfaces_text(net: ManagementNetwork) -> str:
    """ifupdown stanzas: the bridge with the NIC as its port, the address on the bridge (or on
    its VLAN device).

    Address and netmask are separate lines, the form every ifupdown (Debian's, busybox's) reads.
    """
    admin = net.admin
    lines = [
        f"# Management network, written by xcp-provision: {net.nic} on "
        f"{_BACKEND_NAMES[net.backend]} {BRIDGE}",
        f"auto {BRIDGE}",
    ]
    if net.backend == NetworkBackend.OPENVSWITCH:
        lines.append(f"allow-ovs {BRIDGE}")
    bridge = [[f"iface {BRIDGE} inet manual"]] if admin.vlan else _address_stanzas(admin, BRIDGE)
    bridge[0] += _bridge_options(net)
    lines += _joined(bridge)
    if net.backend == NetworkBackend.OPENVSWITCH:
        lines += [
            "",
            f"allow-{BRIDGE} {net.nic}",
            f"iface {net.nic} inet manual",
            f"\tovs_bridge {BRIDGE}",
            "\tovs_type OVSPort",
        ]
    if admin.vlan:
        vlan = [
            [*stanza, f"\tvlan-raw-device {BRIDGE}"]
            for stanza in _address_stanzas(admin, net.device)
        ]
        lines += ["", f"auto {net.device}", *_joined(vlan)]
    return "\n".join(lines) + "\n"


def _joined(stanzas: list[list[str]]) -> list[str]:
    return [line for stanza in stanzas for line in stanza]


def _bridge_options(net: ManagementNetwork) -> list[str]:
    """What makes ``xenbr0`` the backend's bridge over the NIC, with the NIC's MAC.

    Without a known MAC, both take the NIC's own when the bridge is made: bridge-utils reads an
    interface name in ``bridge_hw``, and openvswitch-switch's hook runs ``ovs_extra`` through the
    shell.
    """
    if net.backend == NetworkBackend.BRIDGE:
        return [
            f"\tbridge_ports {net.nic}",
            f"\tbridge_hw {net.mac or net.nic}",
            "\tbridge_stp off",
            "\tbridge_fd 0",
        ]
    mac = net.mac or f"$(cat /sys/class/net/{net.nic}/address)"
    return [
        "\tovs_type OVSBridge",
        f"\tovs_ports {net.nic}",
        f'\tovs_extra set bridge ${{IFACE}} other-config:hwaddr=\\"{mac}\\"',
    ]


def _address_stanzas(admin: AdminInterface, iface: str) -> list[list[str]]:
    """One stanza per address family the answer file configures; with none, one that brings
    the interface up without an address (the bridge must exist for guests all the same)."""
    stanzas = []
    if admin.proto == Proto.STATIC:
        network = ipaddress.ip_network(f"{admin.ipaddr}/{admin.subnet}", strict=False)
        stanza = [
            f"iface {iface} inet static",
            f"\taddress {admin.ipaddr}",
            f"\tnetmask {network.netmask}",
        ]
        stanzas.append(stanza + ([f"\tgateway {admin.gateway}"] if admin.gateway else []))
    elif admin.proto == Proto.DHCP:
        stanzas.append([f"iface {iface} inet dhcp"])
    if admin.protov6 == ProtoV6.STATIC:
        address, _, prefix = (admin.ipv6 or "").partition("/")
        stanza = [
            f"iface {iface} inet6 static",
            f"\taddress {address}",
            f"\tnetmask {prefix or 64}",
        ]
        stanzas.append(stanza + ([f"\tgateway {admin.gatewayv6}"] if admin.gatewayv6 else []))
    elif admin.protov6 in (ProtoV6.DHCP, ProtoV6.AUTOCONF):
        method = "dhcp" if admin.protov6 == ProtoV6.DHCP else "auto"
        stanzas.append([f"iface {iface} inet6 {method}"])
    return stanzas or [[f"iface {iface} inet manual"]]


def xl_conf_text(text: str, backend: NetworkBackend) -> str:
    """``xl.conf`` with guests' vifs defaulting to ``xenbr0`` and the backend's vif script.

    Each setting takes the place of its first line in the file, commented or not (Debian's file
    carries both commented out, with their explanation above); later lines for it are dropped,
    so writing twice changes nothing.
    """
    wanted = {"vif.default.script": VIF_SCRIPTS[backend], "vif.default.bridge": BRIDGE}
    out: list[str] = []
    written: set[str] = set()
    for line in text.splitlines():
        key, sep, _ = line.lstrip("#").partition("=")
        key = key.strip()
        if not sep or key not in wanted:
            out.append(line)
        elif key not in written:
            out.append(f'{key}="{wanted[key]}"')
            written.add(key)
    out += [f'{key}="{value}"' for key, value in wanted.items() if key not in written]
    return "\n".join(out) + "\n"
