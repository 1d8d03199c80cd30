"""ProxyDHCP on a multi-homed server: each request answered out of the interface it came in on.

A server namespace with two PXE networks (veth pairs to client namespaces A and B) and a third,
uplink network holding its default route (or no default route at all). A client on each PXE
network broadcasts a PXE DISCOVER and must get the offer on its own link, naming the server's
address on that network; a listener on the uplink must see nothing. Answering by the routing
table instead sends both offers to the uplink, or fails with "Network is unreachable".
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from test_dhcp_proxy import BROADCAST, in_netns, pxe_packet

from common.runner import run
from pxe.config import ConfigError, load_settings
from pxe.dhcp import options as opt
from pxe.dhcp.links import InterfaceError
from pxe.dhcp.packet import DhcpPacket
from pxe.dhcp.proxy import ProxyDhcpService

pytestmark = pytest.mark.root


@dataclass(frozen=True)
class Net:
    client_ns: str
    server_if: str
    client_if: str
    server_ip: str
    client_ip: str


@dataclass(frozen=True)
class Site:
    server_ns: str
    pxe_a: Net
    pxe_b: Net
    uplink: Net


@pytest.fixture(scope="module", params=["default-route-on-uplink", "no-default-route"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    tag = f"mh{os.getpid() % 10000}{request.param[0]}"
    server_ns = f"{tag}-srv"
    nets = [Net(f"{tag}-{name}", f"{tag}{name}s", f"{tag}{name}c", f"10.7{i}.0.1", f"10.7{i}.0.2")
            for i, name in enumerate(("a", "b", "u"), start=1)]  # fmt: skip
    made = []
    try:
        run(["ip", "netns", "add", server_ns])
        made.append(server_ns)
        run(["ip", "-n", server_ns, "link", "set", "lo", "up"])
        for net in nets:
            run(["ip", "netns", "add", net.client_ns])
            made.append(net.client_ns)
            run(["ip", "link", "add", net.server_if, "netns", server_ns, "type", "veth",
                 "peer", "name", net.client_if, "netns", net.client_ns])  # fmt: skip
            for ns, ifname, address in ((server_ns, net.server_if, net.server_ip),
                                        (net.client_ns, net.client_if, net.client_ip)):
                run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", ifname])
                run(["ip", "-n", ns, "link", "set", ifname, "up"])
        uplink = nets[2]
        if request.param == "default-route-on-uplink":
            run(["ip", "-n", server_ns, "route", "add", "default", "via", uplink.client_ip])
        yield Site(server_ns, *nets)
    finally:
        for ns in made:
            run(["ip", "netns", "del", ns], check=False)


class Listener:
    """A DHCP client's port 68 on one link, created inside its namespace."""

    def __init__(self, net: Net) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, net.client_if.encode())
            sock.bind(("0.0.0.0", 68))
            return sock

        self.sock = in_netns(net.client_ns, make)

    def send(self, packet: DhcpPacket) -> None:
        self.sock.sendto(packet.encode(), BROADCAST)

    def replies(self, timeout: float) -> list[DhcpPacket]:
        self.sock.settimeout(timeout)
        got = []
        while True:
            try:
                got.append(DhcpPacket.decode(self.sock.recv(4096)))
            except TimeoutError:
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listeners(site: Site) -> Iterator[dict[str, Listener]]:
    made = {"a": Listener(site.pxe_a), "b": Listener(site.pxe_b), "u": Listener(site.uplink)}
    yield made
    for listener in made.values():
        listener.close()


def start_proxy(site: Site, **kwargs: object) -> ProxyDhcpService:
    # No address and no URL given: each network gets the serving interface's own address.
    service = ProxyDhcpService(None, None, http_port=8080, **kwargs)  # type: ignore[arg-type]
    in_netns(site.server_ns, service.start)
    return service


def test_each_network_gets_the_offer_on_its_own_link_with_its_own_address(site, listeners):
    service = start_proxy(site)
    try:
        for i, (name, net) in enumerate((("a", site.pxe_a), ("b", site.pxe_b))):
            listeners[name].send(pxe_packet(opt.DISCOVER, 0, xid=0xA000 + i,
                                            mac=bytes([2, 0, 0, 0, 0, i])))
            [offer] = listeners[name].replies(timeout=1.5)
            assert offer.xid == 0xA000 + i
            assert offer.siaddr == IPv4Address(net.server_ip)
            assert offer.options[opt.SERVER_ID] == IPv4Address(net.server_ip).packed
            assert offer.options[opt.TFTP_SERVER] == net.server_ip.encode()
            [ipxe] = _ask(listeners[name], pxe_packet(opt.DISCOVER, 0, xid=0xA100 + i, ipxe=True))
            assert ipxe.file == f"http://{net.server_ip}:8080/boot/ipxe".encode()
        # nothing leaked onto the other PXE network or the uplink
        assert listeners["a"].replies(timeout=0.3) == []
        assert listeners["b"].replies(timeout=0.3) == []
        assert listeners["u"].replies(timeout=0.3) == []
        assert service.counters.answered == 4
    finally:
        service.stop()


def _ask(listener: Listener, packet: DhcpPacket) -> list[DhcpPacket]:
    listener.send(packet)
    return [r for r in listener.replies(timeout=1.5) if r.xid == packet.xid]


def test_a_listed_interface_is_served_and_the_others_are_not(site, listeners):
    service = start_proxy(site, interfaces=(site.pxe_b.server_if,))
    try:
        assert _ask(listeners["a"], pxe_packet(opt.DISCOVER, 7, xid=0xB001)) == []
        [offer] = _ask(listeners["b"], pxe_packet(opt.DISCOVER, 7, xid=0xB002))
        assert offer.siaddr == IPv4Address(site.pxe_b.server_ip)
        assert service.counters.other_interface == 1
    finally:
        service.stop()


def test_an_interface_the_server_lacks_is_one_clear_error(site):
    service = ProxyDhcpService(None, None, interfaces=("pxe-missing0",))
    with pytest.raises(InterfaceError, match="pxe-missing0, which this machine does not have"):
        in_netns(site.server_ns, service.start)
    service.stop()


def test_dhcp_interfaces_setting_list_string_and_the_old_alias(tmp_path: Path):
    config = tmp_path / "server.toml"
    config.write_text('dhcp_interfaces = ["eth1", "eth2"]\ndhcp_interface = "eth0"\n')
    assert load_settings(config, environ={}).dhcp_interface_names() == ("eth1", "eth2", "eth0")
    env = {"XCP_PROVISION_DHCP_INTERFACES": "eth3, eth4"}
    assert load_settings(None, environ=env).dhcp_interface_names() == ("eth3", "eth4")
    old = {"XCP_PROVISION_DHCP_INTERFACE": "eth5"}
    assert load_settings(None, environ=old).dhcp_interface_names() == ("eth5",)
    assert load_settings(None, environ={}).dhcp_interface_names() == ()
    # a worker process gets the list back through the environment
    settings = load_settings(config, environ={})
    assert load_settings(None, environ=settings.as_environment()) == settings
    config.write_text("dhcp_interfaces = 3\n")
    assert load_settings(config, environ={}).dhcp_interface_names() == ("3",)
    config.write_text('dhcp_dns = ["10.0.0.1", "10.0.0.2"]\n')
    assert load_settings(config, environ={}).dhcp_dns == "10.0.0.1,10.0.0.2"
    with pytest.raises(ConfigError):
        load_settings(None, environ={"XCP_PROVISION_DHCP_INTERFACEZ": "x"})
