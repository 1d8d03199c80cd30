"""The site's own DHCP server, as the lab plays it: dnsmasq handing out addresses, nothing else.

It runs on its own "machine" (the site namespace, see :mod:`lab.netns`) at its own address.

It knows nothing about PXE (no boot file, no next-server, no TFTP, no DNS), exactly like the
existing DHCP of a datacenter; everything network-boot comes from our ProxyDHCP beside it.
"""

from __future__ import annotations

import time
from pathlib import Path

from lab.errors import LabError
from lab.netns import SITE_IFACE, LabNetwork
from lab.process import Background, bounded, launch

LEASE_TIME = "1h"


def command(net: LabNetwork, lease_file: Path, max_seconds: float) -> list[str]:
    first, last = net.dhcp_range()
    return [
        *net.site_exec_prefix(),
        *bounded(max_seconds),
        "dnsmasq",
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        f"--interface={SITE_IFACE}",
        "--bind-interfaces",
        f"--dhcp-range={first},{last},{net.subnet.netmask},{LEASE_TIME}",
        f"--dhcp-leasefile={lease_file}",
        "--dhcp-authoritative",
        "--log-dhcp",
    ]


def start_site_dhcp(
    net: LabNetwork, workdir: Path, max_seconds: float = 7200, timeout: float = 30.0
) -> Background:
    """Start dnsmasq on the site's link and wait until it says it is serving."""
    log_path = workdir / "dnsmasq.log"
    argv = command(net, workdir / "dnsmasq.leases", max_seconds)
    server = launch("dnsmasq", argv, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            raise LabError(
                "site DHCP", f"dnsmasq exited with {server.proc.returncode}: {server.log_tail(5)}"
            )
        if "DHCP, IP range" in log_path.read_text(errors="replace"):
            return server
        time.sleep(0.2)
    server.stop()
    raise LabError("site DHCP", f"dnsmasq did not start within {timeout:.0f} s")


def leases(lease_file: Path) -> dict[str, str]:
    """MAC to address, from dnsmasq's lease file."""
    found: dict[str, str] = {}
    if not lease_file.exists():
        return found
    for line in lease_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            found[parts[1].lower()] = parts[2]
    return found
