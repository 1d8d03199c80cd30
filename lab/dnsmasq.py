"""The site's own DHCP server, as the lab plays it: dnsmasq handing out addresses.

It runs on its own "machine" (the site namespace, see :mod:`lab.netns`) at its own address.

It knows nothing about PXE (no boot file, no next-server, no TFTP), exactly like the existing
DHCP of a datacenter; everything network-boot comes from our ProxyDHCP beside it. By default it
serves no DNS either. Given site names (an answer file written for a site names its web server,
``pxehost.example.com`` in XCP-ng's examples), it is also the site's DNS: it answers those names
with its own address, hands itself out as the resolver, and logs every query, so the lab can
see a host resolve them through the resolver DHCP gave it. It forwards nothing: the lab has no
way out, and a name it does not know must fail rather than leak.

Given an IPv6 prefix, it is also the site's router for it: router advertisements alone (no
DHCPv6), so a host on ``protov6="autoconf"`` takes the prefix and its MAC's EUI-64 by SLAAC, the
site's machine (its link-local address) its default router. dnsmasq advertises a prefix only on an
interface holding an address in it.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.netns import SITE_IFACE, LabNetwork
from lab.process import Background, bounded, launch, stopped_unless_ready

LEASE_TIME = "1h"
# The part of an advertised /64 that DHCPv6 leases from, when it does (Ipv6Offer.dhcpv6).
DHCPV6_FIRST, DHCPV6_LAST = 0x100, 0x1FF


@dataclass(frozen=True)
class Ipv6Offer:
    """What the site's router offers on IPv6: its prefix in router advertisements, for SLAAC,
    or (``dhcpv6``) with the managed flag and leases from part of it, the DNS server handed out
    with them (``resolver``; DHCPv6 clients write it over the answer file's)."""

    prefix: ipaddress.IPv6Network
    dhcpv6: bool = False
    resolver: str = ""


def command(
    net: LabNetwork,
    lease_file: Path,
    max_seconds: float,
    names: tuple[str, ...] = (),
    resolver: str = "",
    *,
    advertised: Ipv6Offer | None = None,
) -> list[str]:
    """``names``: host names the site's DNS answers with the site's address (none: no DNS);
    ``resolver``: another machine's DNS server that DHCP hands out instead; ``advertised``: what
    its router advertisements offer on IPv6 (none: it sends none)."""
    first, last = net.dhcp_range()
    return [
        *net.site_exec_prefix(),
        *bounded(max_seconds),
        "dnsmasq",
        "--no-daemon",
        "--conf-file=/dev/null",
        *_dns(net, names, resolver),
        f"--interface={SITE_IFACE}",
        "--bind-interfaces",
        f"--dhcp-range={first},{last},{net.subnet.netmask},{LEASE_TIME}",
        *_router_advertisements(advertised),
        f"--dhcp-leasefile={lease_file}",
        "--dhcp-authoritative",
        "--log-dhcp",
    ]


def _dns(net: LabNetwork, names: tuple[str, ...], resolver: str) -> list[str]:
    if not names:
        handed_out = [f"--dhcp-option=option:dns-server,{resolver}"] if resolver else []
        return ["--port=0", *handed_out]
    return [
        "--no-resolv",
        "--no-hosts",
        "--log-queries",
        *[f"--host-record={name},{net.site_ip}" for name in names],
        # 0.0.0.0: the address of the machine running dnsmasq, as DHCP option 6.
        "--dhcp-option=option:dns-server,0.0.0.0",
    ]


def _router_advertisements(offer: Ipv6Offer | None) -> list[str]:
    if offer is None:
        return []
    prefix = offer.prefix
    if not offer.dhcpv6:
        # ra-only: the advertisement's autonomous flag set and no DHCPv6 behind it.
        return ["--enable-ra", f"--dhcp-range={prefix.network_address},ra-only,{prefix.prefixlen}"]
    # A range without a mode: the managed flag set, the prefix on-link but not autonomous.
    leased = f"{prefix[DHCPV6_FIRST]},{prefix[DHCPV6_LAST]},{prefix.prefixlen},{LEASE_TIME}"
    handed_out = [f"--dhcp-option=option6:dns-server,[{offer.resolver}]"] if offer.resolver else []
    return ["--enable-ra", f"--dhcp-range={leased}", *handed_out]


def start_site_dhcp(
    net: LabNetwork,
    workdir: Path,
    max_seconds: float = 7200,
    timeout: float = 30.0,
    *,
    names: tuple[str, ...] = (),
    resolver: str = "",
    advertised: Ipv6Offer | None = None,
) -> Background:
    """Start dnsmasq on the site's link and wait until it says it is serving; ``names``: host
    names its DNS answers with the site's address (none: it serves no DNS); ``resolver``: the
    DNS server it hands out instead (none: no DNS at all); ``advertised``: what it offers on
    IPv6 as the site's router (none: no router advertisements)."""
    log_path = workdir / "dnsmasq.log"
    argv = command(
        net, workdir / "dnsmasq.leases", max_seconds, names, resolver, advertised=advertised
    )
    server = launch("dnsmasq", argv, log_path)
    deadline = time.monotonic() + timeout
    with stopped_unless_ready(server):
        while time.monotonic() < deadline:
            if not server.running():
                why = f"exited with {server.proc.returncode}: {server.log_tail(5)}"
                raise LabError("site DHCP", f"dnsmasq {why}")
            if "DHCP, IP range" in log_path.read_text(errors="replace"):
                return server
            time.sleep(0.2)
        raise LabError("site DHCP", f"dnsmasq did not start within {timeout:.0f} s")


def leases(lease_file: Path) -> dict[str, str]:
    """MAC to IPv4 address, from dnsmasq's lease file."""
    return {mac.lower(): address for mac, address in _lease_lines(lease_file) if ":" not in address}


def ipv6_leases(lease_file: Path) -> set[str]:
    """The IPv6 addresses leased by DHCPv6 (their lines name a client's IAID and DUID, no MAC)."""
    return {address for _, address in _lease_lines(lease_file) if ":" in address}


def _lease_lines(lease_file: Path) -> list[tuple[str, str]]:
    """(second field, address) of each lease line; the ``duid`` line has no address."""
    if not lease_file.exists():
        return []
    rows = [line.split() for line in lease_file.read_text().splitlines()]
    return [(parts[1], parts[2]) for parts in rows if len(parts) >= 3 and parts[0] != "duid"]
