"""The site's DNS as the IPv6 lab plays it: a real BIND ``named`` in the server's namespace.

It is what a datacenter's DNS is to the server and the hosts: the resolver the site's DHCP hands
out (so iPXE and the installer resolve the server's name over IPv4), the resolver dom0's answer
file names (so dom0 resolves it over IPv6), and the primary of the forward zone and of both
reverse zones, accepting RFC 2136 updates signed with one TSIG key, as the server must meet it.
The server's name has an A and an AAAA record: one ``public_url`` for both address families.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.runner import run
from lab.errors import LabError
from lab.netns import LabNetwork
from lab.process import Background, bounded, launch, stopped_unless_ready

FORWARD_ZONE = "lab.test."
SERVER_NAME = "pxe"
KEY_NAME = "lab-key"
ALGORITHM = "hmac-sha256"
# A query as named's query log (``querylog yes``) writes it: client address, name, type.
_QUERY = re.compile(r"client @\S+ (\S+)#\d+ \(\S+\): query: (\S+) IN (\S+) ")
SOA = "@ 300 IN SOA ns.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n"


@dataclass(frozen=True)
class SiteDns:
    """A running ``named``, with the zones and key the server is configured with."""

    process: Background
    server_ipv4: str
    server_ipv6: str
    reverse_zones: tuple[str, str]  # in-addr.arpa, then ip6.arpa
    key_file: Path

    @property
    def server_fqdn(self) -> str:
        return f"{SERVER_NAME}.{FORWARD_ZONE}".rstrip(".")

    def settings_env(self) -> tuple[tuple[str, str], ...]:
        """The server's ``[dns]`` settings, as its environment gives them."""
        return (
            ("XCP_PROVISION_DNS_SERVER", self.server_ipv6),
            ("XCP_PROVISION_DNS_FORWARD_ZONE", FORWARD_ZONE),
            ("XCP_PROVISION_DNS_REVERSE_ZONES", ",".join(self.reverse_zones)),
            ("XCP_PROVISION_DNS_KEY_NAME", KEY_NAME),
            ("XCP_PROVISION_DNS_KEY_ALGORITHM", ALGORITHM),
            ("XCP_PROVISION_DNS_KEY_FILE", str(self.key_file)),
        )

    def askers(self, name: str) -> set[tuple[str, str]]:
        """Who asked this server for ``name`` so far: (client address, record type) pairs."""
        text = self.process.log_path.read_text(errors="replace")
        return {
            (client, rdtype)
            for client, asked, rdtype in _QUERY.findall(text)
            if asked.rstrip(".").lower() == name.lower()
        }

    def query(self, net: LabNetwork, name: str, rdtype: str) -> list[str]:
        """The answer's values, asked of this server from the server's namespace."""
        argv = [*net.exec_prefix(), "dig", "+short", "+norec", "+time=3", "+tries=2"]
        argv += [f"@{self.server_ipv6}", name, rdtype]
        result = run(argv, check=False, timeout=30)
        return sorted(line.strip() for line in result.stdout.splitlines() if line.strip())


def reverse_zone(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The reverse zone of a network on a label boundary (/24 or a /4 multiple in IPv6)."""
    labels = network.network_address.reverse_pointer.split(".")
    bits_per_label = 8 if network.version == 4 else 4
    host_labels = (network.max_prefixlen - network.prefixlen) // bits_per_label
    return ".".join(labels[host_labels:]) + "."


def write_named_conf(
    workdir: Path,
    zones: Sequence[tuple[str, str]],
    *,
    listen: tuple[str, str],
    port: int,
    key: tuple[str, str],
    key_file: Path,
    querylog: bool = False,
) -> Path:
    """``named.conf`` for a primary of ``zones`` ((zone, file in ``workdir``)...) that accepts
    RFC 2136 updates signed with the TSIG ``key`` (name, base64 secret; hmac-sha256), which is
    also written to ``key_file`` as named and our server read it, listening on ``listen`` (an
    IPv4 and an IPv6 address, either ``none``). Recursion, DNSSEC validation and notifies are
    off: it answers for its zones and nothing else."""
    name, secret = key
    key_block = f'key "{name}" {{\n\talgorithm {ALGORITHM};\n\tsecret "{secret}";\n}};\n'
    key_file.write_text(key_block)
    zone_blocks = "".join(
        f'zone "{zone.rstrip(".")}" {{ type primary; file "{workdir / filename}";'
        f' allow-update {{ key "{name}"; }}; }};\n'
        for zone, filename in zones
    )
    v4, v6 = listen
    conf = workdir / "named.conf"
    conf.write_text(
        "options {\n"
        f'  directory "{workdir}";\n'
        f'  pid-file "{workdir / "named.pid"}";\n'
        f'  session-keyfile "{workdir / "session.key"}";\n'
        f'  managed-keys-directory "{workdir}";\n'
        f"  listen-on port {port} {{ {v4}; }};\n"
        f"  listen-on-v6 port {port} {{ {v6}; }};\n"
        "  recursion no;\n"
        "  dnssec-validation no;\n"
        "  notify no;\n"
        + ("  querylog yes;\n" if querylog else "")
        + "};\n"
        "controls { };\n" + key_block + zone_blocks
    )
    return conf


def start_named(
    net: LabNetwork, ipv6: ipaddress.IPv6Interface, workdir: Path, max_seconds: float
) -> SiteDns:
    """Start ``named`` in the server's namespace on the bridge's two addresses, port 53."""
    workdir.mkdir(parents=True, exist_ok=True)
    server_ipv6 = str(ipv6.ip)
    zones = (
        reverse_zone(ipaddress.ip_network(f"{net.server_ip}/24", strict=False)),
        reverse_zone(ipv6.network),
    )
    key_file = workdir / "tsig.key"
    (workdir / "forward.zone").write_text(
        f"$TTL 300\n$ORIGIN {FORWARD_ZONE}\n{SOA}@ IN NS ns\n"
        f"ns IN A {net.server_ip}\nns IN AAAA {server_ipv6}\n"
        f"{SERVER_NAME} IN A {net.server_ip}\n{SERVER_NAME} IN AAAA {server_ipv6}\n"
    )
    for index, zone in enumerate(zones):
        (workdir / f"reverse{index}.zone").write_text(
            f"$TTL 300\n$ORIGIN {zone}\n{SOA}@ IN NS ns.{FORWARD_ZONE}\n"
        )
    conf = write_named_conf(
        workdir,
        [(FORWARD_ZONE, "forward.zone"), (zones[0], "reverse0.zone"), (zones[1], "reverse1.zone")],
        listen=(net.server_ip, server_ipv6),
        port=53,
        key=(KEY_NAME, base64.b64encode(secrets.token_bytes(32)).decode()),
        key_file=key_file,
        querylog=True,
    )
    argv = [*net.exec_prefix(), *bounded(max_seconds), "named", "-g", "-n", "1", "-c", str(conf)]
    process = launch("named", argv, workdir / "named.log")
    dns = SiteDns(process, net.server_ip, server_ipv6, zones, key_file)
    deadline = time.monotonic() + 30
    with stopped_unless_ready(process):
        while time.monotonic() < deadline:
            if not process.running():
                raise LabError("site DNS", f"named exited: {process.log_tail(8)}")
            if dns.query(net, dns.server_fqdn, "AAAA") == [server_ipv6]:
                return dns
            time.sleep(0.5)
        raise LabError("site DNS", f"named did not answer for {dns.server_fqdn} within 30 s")
