"""A private network for the lab: a namespace holding a bridge and one tap device per VM.

Nothing the lab does is visible outside the namespace, so the VMs' DHCP broadcasts never reach a
real network and two labs on one machine never meet (names carry the pid and a counter).

The site's DHCP server is a separate "machine": a second namespace joined to the bridge by a veth
pair, with its own address. A PXE client that wrongly used the site DHCP's next-server would ask
that address, where nothing serves TFTP, instead of reaching our server by accident.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from common.errors import CommandError
from common.runner import run
from lab.errors import LabError

log = logging.getLogger(__name__)

BRIDGE = "labbr0"
SITE_IFACE = "site0"
SITE_PORT = "siteport0"
DEFAULT_SUBNET = "10.99.0.0/24"
_counter = itertools.count()


@dataclass(frozen=True)
class LabNetwork:
    """Where the lab's traffic lives; the server owns the subnet's first address."""

    namespace: str
    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def site_namespace(self) -> str:
        return f"{self.namespace}-site"

    @property
    def server_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def site_ip(self) -> str:
        return str(self.subnet.network_address + 2)

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen

    def dhcp_range(self) -> tuple[str, str]:
        """The addresses the site's DHCP hands out: the upper half, away from the server."""
        hosts = list(itertools.islice(self.subnet.hosts(), 254))
        return str(hosts[len(hosts) // 2]), str(hosts[-1])

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def site_exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it on the site DHCP's "machine"."""
        return ["ip", "netns", "exec", self.site_namespace]

    def add_tap(self, name: str) -> str:
        """A tap device on the bridge, for one VM's NIC; deleted with the namespace."""
        ns = self.namespace
        try:
            run(["ip", "-n", ns, "tuntap", "add", "dev", name, "mode", "tap"])
            run(["ip", "-n", ns, "link", "set", name, "master", self.bridge])
            run(["ip", "-n", ns, "link", "set", name, "up"])
        except CommandError as exc:
            raise LabError("network", f"cannot create tap {name} in {ns}: {exc}") from exc
        return name


def unique_namespace() -> str:
    return f"xcplab-{os.getpid()}-{next(_counter)}"


def create(subnet: str = DEFAULT_SUBNET, namespace: str | None = None) -> LabNetwork:
    """Create both namespaces, the bridge with the server's address and the site's veth link."""
    net = LabNetwork(namespace or unique_namespace(), BRIDGE, ipaddress.IPv4Network(subnet))
    ns, site = net.namespace, net.site_namespace
    try:
        run(["ip", "netns", "add", ns])
    except CommandError as exc:
        raise LabError("network", f"cannot create namespace {ns}: {exc}") from exc
    try:
        run(["ip", "netns", "add", site])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                net.bridge,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            ]
        )
        run(["ip", "-n", ns, "addr", "add", f"{net.server_ip}/{net.prefixlen}", "dev", net.bridge])
        run(["ip", "-n", ns, "link", "set", net.bridge, "up"])
        run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                SITE_PORT,
                "type",
                "veth",
                "peer",
                "name",
                SITE_IFACE,
                "netns",
                site,
            ]
        )
        run(["ip", "-n", ns, "link", "set", SITE_PORT, "master", net.bridge, "up"])
        run(["ip", "-n", site, "link", "set", "lo", "up"])
        run(["ip", "-n", site, "addr", "add", f"{net.site_ip}/{net.prefixlen}", "dev", SITE_IFACE])
        run(["ip", "-n", site, "link", "set", SITE_IFACE, "up"])
    except CommandError as exc:
        destroy(net)
        raise LabError("network", f"cannot set up bridge {net.bridge} in {ns}: {exc}") from exc
    log.info("lab network %s: bridge %s, server %s", ns, net.bridge, net.server_ip)
    return net


def destroy(net: LabNetwork) -> None:
    """Delete both namespaces (bridge, taps and veth go with them); quiet when already gone."""
    for ns in (net.site_namespace, net.namespace):
        result = run(["ip", "netns", "del", ns], check=False)
        if result.returncode != 0 and "No such file" not in result.stderr:
            log.warning("could not delete namespace %s: %s", ns, result.stderr.strip())


def exists(namespace: str) -> bool:
    return namespace in run(["ip", "netns", "list"]).stdout.split()


@contextlib.contextmanager
def lab_network(subnet: str = DEFAULT_SUBNET) -> Iterator[LabNetwork]:
    net = create(subnet)
    try:
        yield net
    finally:
        destroy(net)
