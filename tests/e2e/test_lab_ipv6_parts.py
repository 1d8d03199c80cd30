"""The IPv6 lab's parts without a VM: its dual-stack site (the bridge's IPv6 address and a real
BIND answering the server's name in both families), what the site DHCP is told to hand out, the
site's router advertisements of an autoconf run (a machine on the link takes the address the lab
expects of its MAC), and the neighbour probe that tells whether a machine on the link holds an
address. A few seconds; the whole lab is ``test_lab_ipv6.py``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from answerfiles.render import list_templates
from common.runner import run
from lab import dnsmasq, netns
from lab.dnsmasq import Ipv6Offer
from lab.ipv6 import (
    HOST_IPV6,
    SERVER_IPV6,
    SITE_IPV6,
    Addressing,
    _answers,
    _DualStackSite,
    management_address,
)
from lab.named import reverse_zone
from lab.server import HTTP_PORT

pytestmark = pytest.mark.root


def test_reverse_zones_fall_on_label_boundaries() -> None:
    assert reverse_zone(ipaddress.ip_network("10.99.0.0/24")) == "0.99.10.in-addr.arpa."
    assert (
        reverse_zone(ipaddress.ip_network("fd00:99::/64"))
        == "0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa."
    )


@pytest.fixture
def lab_net() -> Iterator[netns.LabNetwork]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with netns.lab_network() as net:
        yield net


def test_the_site_names_the_server_in_both_families_and_logs_who_asked(
    lab_net: netns.LabNetwork, tmp_path: Path
) -> None:
    site = _DualStackSite()
    with contextlib.ExitStack() as teardown:
        services = site(lab_net, tmp_path, 120, teardown)
        dns = site.dns
        assert dns is not None
        assert services.resolver == lab_net.server_ip
        assert services.bind == "::"
        assert services.public_url == f"http://pxe.lab.test:{HTTP_PORT}"
        assert dns.query(lab_net, "pxe.lab.test", "A") == [lab_net.server_ip]
        assert dns.query(lab_net, "pxe.lab.test", "AAAA") == [str(SERVER_IPV6.ip)]
        assert dns.query(lab_net, "nobody.lab.test", "AAAA") == []
        # Asked over IPv4 from the site's machine, as the installer asks from its lease.
        run(
            [
                *lab_net.site_exec_prefix(),
                "dig",
                "+short",
                f"@{lab_net.server_ip}",
                "pxe.lab.test",
                "A",
            ]
        )
        assert (lab_net.site_ip, "A") in dns.askers("pxe.lab.test")
        assert (str(SERVER_IPV6.ip), "AAAA") in dns.askers("pxe.lab.test")
        env = dict(services.server_env)
        assert env["XCP_PROVISION_DNS_REVERSE_ZONES"] == (
            "0.99.10.in-addr.arpa.,0.0.0.0.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa."
        )
        assert "lab-key" in Path(env["XCP_PROVISION_DNS_KEY_FILE"]).read_text()
    assert not dns.process.running()


def test_the_site_dhcp_hands_out_the_resolver_it_is_given(
    lab_net: netns.LabNetwork, tmp_path: Path
) -> None:
    argv = dnsmasq.command(lab_net, tmp_path / "leases", 60, resolver="10.99.0.1")
    assert "--port=0" in argv
    assert "--dhcp-option=option:dns-server,10.99.0.1" in argv
    assert not any(
        arg.startswith("--dhcp-option") for arg in dnsmasq.command(lab_net, tmp_path, 60)
    )


def test_only_an_autoconf_or_dhcpv6_site_dhcp_advertises_the_servers_prefix(
    lab_net: netns.LabNetwork, tmp_path: Path
) -> None:
    slaac = Ipv6Offer(SERVER_IPV6.network)
    argv = dnsmasq.command(lab_net, tmp_path / "leases", 60, advertised=slaac)
    assert argv[-6:-3] == ["--dhcp-range=10.99.0.128,10.99.0.254,255.255.255.0,1h",
                           "--enable-ra", "--dhcp-range=fd00:99::,ra-only,64"]  # fmt: skip
    managed = Ipv6Offer(SERVER_IPV6.network, dhcpv6=True, resolver="fd00:99::1")
    argv = dnsmasq.command(lab_net, tmp_path / "leases", 60, advertised=managed)
    assert argv[-6:-3] == ["--enable-ra", "--dhcp-range=fd00:99::100,fd00:99::1ff,64,1h",
                           "--dhcp-option=option6:dns-server,[fd00:99::1]"]  # fmt: skip
    assert "--enable-ra" not in dnsmasq.command(lab_net, tmp_path / "leases", 60)


def test_dnsmasq_leases_by_family(tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(
        "1764979200 52:54:00:1e:0f:01 10.99.0.207 lab-vm1 01:52:54:00:1e:0f:01\n"
        "duid 00:01:00:01:30:c5:4e:1a:02:00:00:00:00:01\n"
        "1764979200 1042 fd00:99::1a7 lab-vm1 00:01:00:01:30:c5:4e:1b:52:54:00:1e:0f:01\n"
    )
    assert dnsmasq.leases(leases) == {"52:54:00:1e:0f:01": "10.99.0.207"}
    assert dnsmasq.ipv6_leases(leases) == {"fd00:99::1a7"}
    assert dnsmasq.ipv6_leases(tmp_path / "none") == set()


def test_the_expected_management_address_per_addressing() -> None:
    mac = "52:54:00:12:34:01"
    assert str(management_address(Addressing.AUTOCONF, mac)) == "fd00:99::5054:ff:fe12:3401"
    assert management_address(Addressing.STATIC, mac) == HOST_IPV6.ip
    assert management_address(Addressing.DHCP, mac) is None  # known from the lease alone
    assert Addressing.AUTOCONF.template == "fresh-autoconf-ipv6"
    assert Addressing.STATIC.template == "fresh-static-ipv6"
    assert Addressing.DHCP.template == "fresh-dhcp-ipv6"
    assert set(list_templates()) >= {mode.template for mode in Addressing}


def _addresses(namespace: str, ifname: str, scope: str = "global") -> list[str]:
    """The IPv6 addresses of ``scope`` on ``ifname`` past duplicate address detection."""
    shown = json.loads(run(["ip", "-n", namespace, "-j", "-6", "addr", "show", "dev", ifname,
                            "scope", scope]).stdout)  # fmt: skip
    return [
        info["local"]
        for link in shown
        for info in link.get("addr_info", [])
        if "local" in info and not info.get("tentative")
    ]


@pytest.fixture
def machine_on_the_link(lab_net: netns.LabNetwork) -> Iterator[tuple[str, str]]:
    """A third namespace on the lab's bridge, as a VM's dom0 would be: (namespace, MAC)."""
    namespace, mac = f"{lab_net.namespace}-dom0", "52:54:00:12:34:01"
    run(["ip", "netns", "add", namespace])
    try:
        run(["ip", "-n", lab_net.namespace, "link", "add", "dom0port", "type", "veth", "peer",
             "name", "eth0", "netns", namespace])  # fmt: skip
        run(["ip", "-n", lab_net.namespace, "link", "set", "dom0port", "master", lab_net.bridge,
             "up"])  # fmt: skip
        run(["ip", "-n", namespace, "link", "set", "eth0", "address", mac, "up"])
        yield namespace, mac
    finally:
        run(["ip", "netns", "del", namespace], check=False)


def test_an_autoconf_site_routes_and_the_machine_takes_the_expected_slaac_address(
    lab_net: netns.LabNetwork, tmp_path: Path, machine_on_the_link: tuple[str, str]
) -> None:
    namespace, mac = machine_on_the_link
    site = _DualStackSite(Addressing.AUTOCONF)
    with contextlib.ExitStack() as teardown:
        services = site(lab_net, tmp_path, 120, teardown)
        assert services.advertised == Ipv6Offer(SERVER_IPV6.network)
        dhcp = dnsmasq.start_site_dhcp(lab_net, tmp_path, 120, resolver=services.resolver,
                                       advertised=services.advertised)  # fmt: skip
        teardown.callback(dhcp.stop)
        wanted = str(management_address(Addressing.AUTOCONF, mac))
        deadline = time.monotonic() + 30
        while wanted not in _addresses(namespace, "eth0"):
            assert time.monotonic() < deadline, _addresses(namespace, "eth0")
            time.sleep(0.2)
        # The site's machine is the router: the default route goes through its link-local.
        routes = json.loads(run(["ip", "-n", namespace, "-j", "-6", "route", "show",
                                 "default"]).stdout)  # fmt: skip
        assert [route["gateway"] for route in routes] == _addresses(
            lab_net.site_namespace, netns.SITE_IFACE, "link"
        )
        assert _addresses(lab_net.site_namespace, netns.SITE_IFACE) == [str(SITE_IPV6.ip)]
        # The server's bridge heard the same advertisements and kept its one address.
        assert _addresses(lab_net.namespace, lab_net.bridge) == [str(SERVER_IPV6.ip)]
        assert "RTR-ADVERT(site0) fd00:99::" in (tmp_path / "dnsmasq.log").read_text()


def test_the_neighbour_probe_finds_held_addresses_alone(lab_net: netns.LabNetwork) -> None:
    site_v6 = "fd00:99::2"
    run(
        [
            "ip",
            "-n",
            lab_net.site_namespace,
            "addr",
            "add",
            f"{site_v6}/64",
            "dev",
            netns.SITE_IFACE,
            "nodad",
        ]
    )
    run(
        [
            "ip",
            "-n",
            lab_net.namespace,
            "addr",
            "add",
            str(SERVER_IPV6),
            "dev",
            lab_net.bridge,
            "nodad",
        ]
    )
    assert _answers(lab_net, lab_net.site_ip)
    assert _answers(lab_net, site_v6)
    assert not _answers(lab_net, "10.99.0.77")
    assert not _answers(lab_net, "fd00:99::77")
