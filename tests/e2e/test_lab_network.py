"""The lab's private network: a namespace with a bridge where dnsmasq hands out addresses only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab import dnsmasq, netns
from lab.qemu import VmSpec, command, mac_for

pytestmark = pytest.mark.root


@pytest.fixture
def lab_net():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with netns.lab_network() as net:
        yield net
    assert not netns.exists(net.namespace)
    assert not netns.exists(net.site_namespace)


def test_namespace_has_the_bridge_with_the_server_address(lab_net: netns.LabNetwork) -> None:
    out = run(["ip", "-n", lab_net.namespace, "-4", "addr", "show", lab_net.bridge]).stdout
    assert f"inet {lab_net.server_ip}/24" in out
    lab_net.add_tap("tapt0")
    links = run(["ip", "-n", lab_net.namespace, "link", "show", "master", lab_net.bridge]).stdout
    assert "tapt0" in links
    assert lab_net.namespace not in run(["ip", "link"]).stdout


def test_site_dhcp_gives_a_pxe_client_an_address_and_no_boot_file(
    lab_net: netns.LabNetwork, tmp_path: Path
) -> None:
    ns = lab_net.namespace
    run(["ip", "-n", ns, "link", "add", "client0", "type", "veth", "peer", "name", "port0"])
    run(["ip", "-n", ns, "link", "set", "port0", "master", lab_net.bridge, "up"])
    run(["ip", "-n", ns, "link", "set", "client0", "up"])
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\n[ "$1" = bound ] && env > {tmp_path}/lease.env\nexit 0\n')
    script.chmod(0o755)
    server = dnsmasq.start_site_dhcp(lab_net, tmp_path)
    try:
        run(
            [
                *lab_net.exec_prefix(),
                "busybox",
                "udhcpc",
                "-i",
                "client0",
                "-f",
                "-q",
                "-n",
                "-t",
                "5",
                "-T",
                "1",
                "-V",
                "PXEClient:Arch:00000:UNDI:002001",
                "-s",
                script,
            ],
            timeout=60,
        )
    finally:
        assert server.stop() is not None
    lease = dict(
        line.split("=", 1)
        for line in (tmp_path / "lease.env").read_text().splitlines()
        if "=" in line
    )
    first, last = lab_net.dhcp_range()
    assert lease["ip"].startswith("10.99.0.")
    assert (
        int(first.rsplit(".", 1)[1])
        <= int(lease["ip"].rsplit(".", 1)[1])
        <= int(last.rsplit(".", 1)[1])
    )
    assert "boot_file" not in lease
    assert lease.get("siaddr", "0.0.0.0") in {"0.0.0.0", lab_net.site_ip}
    assert lease["serverid"] == lab_net.site_ip
    assert "DHCPACK(site0)" in (tmp_path / "dnsmasq.log").read_text()


def test_vm_command_bios_and_uefi(tmp_path: Path) -> None:
    net = netns.LabNetwork("ns-x", "labbr0", netns.ipaddress.IPv4Network("10.99.0.0/24"))
    bios = VmSpec("vm1", mac_for(1, seed=0x1234), "tap1", tmp_path)
    argv = command(bios, net, 600)
    assert argv[:4] == ["ip", "netns", "exec", "ns-x"]
    assert argv[argv.index("-cpu") + 1] == "qemu64"
    assert argv[argv.index("-boot") + 1] == "order=c,once=n"
    assert "-no-reboot" not in argv
    assert "-bios" not in argv
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:01" in argv
    uefi = command(VmSpec("vm2", mac_for(2), "tap2", tmp_path, uefi=True), net, 600)
    assert uefi[uefi.index("-bios") + 1].endswith("OVMF.fd")
    assert any(arg.endswith(",romfile=") for arg in uefi)
