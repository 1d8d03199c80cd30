"""The IPv6 lab's parts without a VM: its dual-stack site (the bridge's IPv6 address and a real
BIND answering the server's name in both families), what the site DHCP is told to hand out, and
the neighbour probe that tells whether a machine on the link holds an address. A few seconds;
the whole lab is ``test_lab_ipv6.py``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.runner import run
from lab import dnsmasq, netns
from lab.ipv6 import SERVER_IPV6, _answers, _DualStackSite
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
