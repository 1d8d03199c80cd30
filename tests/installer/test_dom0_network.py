"""The installed dom0's management network: the NIC on bridge xenbr0, for either backend."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from answerfiles.model import AdminInterface, NetworkBackend, Proto, ProtoV6
from common.runner import Result, run
from installer.dom0_network import ManagementNetwork, interfaces_text, xl_conf_text

OVS = NetworkBackend.OPENVSWITCH
BRIDGE = NetworkBackend.BRIDGE
MAC = "52:54:00:aa:bb:cc"
STATIC_VLAN = AdminInterface(name="eth0", proto=Proto.STATIC, protov6=ProtoV6.STATIC, vlan=42,
                             ipaddr="192.0.2.9", subnet="255.255.255.0", gateway="192.0.2.1",
                             ipv6="2001:db8::9/64", gatewayv6="2001:db8::1")  # fmt: skip
# Debian's /etc/xen/xl.conf (xen-utils-common 4.17) around the vif settings.
DEBIAN_XL_CONF = """\
## Global XL config file ##
#autoballoon="auto"

# default vif script to use if none is specified in the guest config
#vif.default.script="vif-bridge"

# default bridge device to use with vif-bridge hotplug scripts
#vif.default.bridge="xenbr0"

#claim_mode=1
"""


def test_openvswitch_by_default_puts_the_nic_on_xenbr0_with_its_mac() -> None:
    net = ManagementNetwork(AdminInterface(hwaddr=MAC), "eth0", MAC, OVS)
    assert net.device == "xenbr0"
    assert interfaces_text(net) == (
        "# Management network, written by xcp-provision: eth0 on the Open vSwitch bridge xenbr0\n"
        "auto xenbr0\n"
        "allow-ovs xenbr0\n"
        "iface xenbr0 inet dhcp\n"
        "\tovs_type OVSBridge\n"
        "\tovs_ports eth0\n"
        f'\tovs_extra set bridge ${{IFACE}} other-config:hwaddr=\\"{MAC}\\"\n'
        "\n"
        "allow-xenbr0 eth0\n"
        "iface eth0 inet manual\n"
        "\tovs_bridge xenbr0\n"
        "\tovs_type OVSPort\n"
    )


def test_openvswitch_hook_hands_ovs_vsctl_the_mac_as_one_quoted_value() -> None:
    """openvswitch-switch's if-pre-up.d hook evaluates ovs_extra in a shell, then splits it."""
    text = interfaces_text(ManagementNetwork(AdminInterface(), "eth0", MAC, OVS))
    [extra] = [line.split(None, 1)[1] for line in text.splitlines() if "ovs_extra" in line]
    words = run(
        ["sh", "-c", 'eval OVS_EXTRA=\\"$IF_OVS_EXTRA\\"; printf "%s\\n" $OVS_EXTRA'],
        env={"IF_OVS_EXTRA": extra, "IFACE": "xenbr0"},
    ).stdout.splitlines()
    assert words == ["set", "bridge", "xenbr0", f'other-config:hwaddr="{MAC}"']


def test_linux_bridge_static_address_sits_on_xenbr0() -> None:
    admin = AdminInterface(name="eno1", proto=Proto.STATIC, ipaddr="10.1.2.3",
                           subnet="255.255.252.0", gateway="10.1.0.1")  # fmt: skip
    assert interfaces_text(ManagementNetwork(admin, "eno1", MAC, BRIDGE)) == (
        "# Management network, written by xcp-provision: eno1 on the Linux bridge xenbr0\n"
        "auto xenbr0\n"
        "iface xenbr0 inet static\n"
        "\taddress 10.1.2.3\n"
        "\tnetmask 255.255.252.0\n"
        "\tgateway 10.1.0.1\n"
        "\tbridge_ports eno1\n"
        f"\tbridge_hw {MAC}\n"
        "\tbridge_stp off\n"
        "\tbridge_fd 0\n"
    )


@pytest.mark.parametrize("backend", [OVS, BRIDGE])
def test_a_vlan_is_a_device_on_the_bridge_holding_both_addresses(backend) -> None:
    net = ManagementNetwork(STATIC_VLAN, "eth0", MAC, backend)
    assert net.device == "xenbr0.42"
    text = interfaces_text(net)
    assert "iface xenbr0 inet manual\n" in text  # the bridge has no address of its own
    assert text.count("iface xenbr0 ") == 1
    assert "auto xenbr0.42\n" in text
    assert text.index("auto xenbr0\n") < text.index("auto xenbr0.42\n")  # ifup -a goes in order
    assert "iface xenbr0.42 inet static\n\taddress 192.0.2.9\n\tnetmask 255.255.255.0\n" in text
    assert "iface xenbr0.42 inet6 static\n\taddress 2001:db8::9\n\tnetmask 64\n" in text
    assert "\tgateway 192.0.2.1\n" in text and "\tgateway 2001:db8::1\n" in text
    assert text.count("vlan-raw-device xenbr0\n") == 2
    assert ("ovs_type OVSBridge" in text) == (backend == OVS)
    assert ("bridge_ports eth0" in text) == (backend == BRIDGE)


@pytest.mark.parametrize(
    ("proto", "protov6", "expected"),
    [
        (Proto.DHCP, ProtoV6.NONE, ["iface xenbr0 inet dhcp"]),
        (Proto.NONE, ProtoV6.AUTOCONF, ["iface xenbr0 inet6 auto"]),
        (Proto.DHCP, ProtoV6.DHCP, ["iface xenbr0 inet dhcp", "iface xenbr0 inet6 dhcp"]),
        (Proto.NONE, ProtoV6.NONE, ["iface xenbr0 inet manual"]),
    ],
)
def test_address_methods_and_the_bridge_options_once(proto, protov6, expected) -> None:
    admin = AdminInterface(name="eth0", proto=proto, protov6=protov6)
    text = interfaces_text(ManagementNetwork(admin, "eth0", MAC, BRIDGE))
    assert [line for line in text.splitlines() if line.startswith("iface")] == expected
    # The first stanza makes the bridge; the next one only adds an address family.
    assert text.index("bridge_ports") < text.index(expected[-1]) or len(expected) == 1
    assert text.count("bridge_ports eth0") == 1
    assert "vlan-raw-device" not in text


@pytest.mark.parametrize("backend", [OVS, BRIDGE])
def test_without_a_known_mac_the_bridge_takes_the_nics_own(backend) -> None:
    text = interfaces_text(ManagementNetwork(AdminInterface(name="eth1"), "eth1", None, backend))
    if backend == BRIDGE:
        assert "\tbridge_hw eth1\n" in text
    else:
        assert 'other-config:hwaddr=\\"$(cat /sys/class/net/eth1/address)\\"' in text


def _ifupdown(tool: str, interfaces: Path, *args: str) -> Result:
    """Debian's ifupdown (dom0's own) on our file: ``ifquery`` parses, ``ifup -n`` only prints
    what it would run (on stderr)."""
    path = shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if path is None:
        pytest.skip("Debian's ifupdown is not installed (make test installs it)")
    state = interfaces.parent / "ifstate"
    state.mkdir(exist_ok=True)
    return run([path, "-i", interfaces, "--state-dir", state, *args])


def _ifquery(interfaces: Path, *args: str) -> list[str]:
    return _ifupdown("ifquery", interfaces, *args).stdout.splitlines()


@pytest.mark.parametrize("backend", [OVS, BRIDGE])
def test_debians_ifupdown_reads_the_bridge_and_the_vlan_on_it(tmp_path: Path, backend) -> None:
    interfaces = tmp_path / "interfaces"
    interfaces.write_text(interfaces_text(ManagementNetwork(STATIC_VLAN, "eth0", MAC, backend)))
    assert _ifquery(interfaces, "--list") == ["lo", "xenbr0", "xenbr0.42"]  # lo is implicit
    bridge = set(_ifquery(interfaces, "xenbr0"))
    if backend == OVS:
        # The OVSBridge hook runs `ifup --allow=xenbr0 <ovs_ports>`: the port is in that class.
        assert _ifquery(interfaces, "--list", "--allow=xenbr0") == ["eth0"]
        assert _ifquery(interfaces, "--list", "--allow=ovs") == ["xenbr0"]
        assert {"ovs_type: OVSBridge", "ovs_ports: eth0"} <= bridge
        assert {"ovs_type: OVSPort", "ovs_bridge: xenbr0"} <= set(_ifquery(interfaces, "eth0"))
    else:
        assert {"bridge_ports: eth0", f"bridge_hw: {MAC}"} <= bridge
    commands = _ifupdown("ifup", interfaces, "-n", "-v", "-a").stderr
    vlan = "ip link add link xenbr0 name xenbr0.42 type vlan id 42"
    assert vlan in commands
    assert commands.index("configuring interface xenbr0=xenbr0 (inet)") < commands.index(vlan)
    assert "ip addr add 192.0.2.9/255.255.255.0 broadcast 192.0.2.255" in commands
    assert "ip -6 addr add 2001:db8::9/64  dev xenbr0.42" in commands


@pytest.mark.parametrize(("backend", "script"), [(OVS, "vif-openvswitch"), (BRIDGE, "vif-bridge")])
def test_xl_conf_points_vifs_at_xenbr0_with_the_backends_script(backend, script) -> None:
    text = xl_conf_text(DEBIAN_XL_CONF, backend)
    lines = text.splitlines()
    assert f'vif.default.script="{script}"' in lines
    assert 'vif.default.bridge="xenbr0"' in lines
    # In place of Debian's commented defaults, under their explanations; the rest kept.
    assert lines.index(f'vif.default.script="{script}"') == 4
    assert "#vif.default.script" not in text and "#vif.default.bridge" not in text
    assert "#claim_mode=1" in lines and "#autoballoon" in text
    assert xl_conf_text(text, backend) == text
    other = BRIDGE if backend == OVS else OVS
    assert xl_conf_text(text, other) == xl_conf_text(DEBIAN_XL_CONF, other)


def test_xl_conf_without_the_settings_gets_them_appended() -> None:
    assert xl_conf_text("", OVS) == (
        'vif.default.script="vif-openvswitch"\nvif.default.bridge="xenbr0"\n'
    )
