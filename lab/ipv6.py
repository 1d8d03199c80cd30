"""The IPv6 lab (``lab run --ipv6``): a host network-boots and installs over IPv4, as most racks
still do, and its dom0 is managed over IPv6 alone.

The site is dual-stack: the server's bridge has an IPv6 address besides its IPv4 one, ``serve``
binds both families (``--bind ::``), and the site's DNS (a real BIND, :mod:`lab.named`) gives the
server's name an A and an AAAA record. The server's ``public_url`` is that name, which is what
an operator would configure: iPXE and the installer resolve it over IPv4 (the site DHCP hands
out the DNS server), dom0 over IPv6 (the answer file names the same DNS server by its IPv6
address). The profile installs the bundled ``fresh-static-ipv6`` template: no IPv4 on the
management interface, a static IPv6 address.

Beyond the plain lab's chain (PXE, install, Xen, dom0, registered, in the pool as master) the
run checks that the agent reported the IPv6 address as its management address, that dom0 no
longer answers on the IPv4 lease its installer had but does on its IPv6 address, and that
the server wrote the host's AAAA and ip6.arpa PTR (and no A record) into BIND over RFC 2136.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from common.errors import CommandError
from common.runner import run
from common.wire import authority
from lab import dnsmasq
from lab.api import LabApi
from lab.errors import LabError
from lab.harness import (
    PROCESS_MARGIN,
    PROFILE,
    Check,
    LabOptions,
    LabReport,
    SiteServices,
    VmRun,
    _failed_step,
    boot_and_check,
    run_reported,
    start_lab,
)
from lab.named import FORWARD_ZONE, SiteDns, start_named
from lab.netns import LabNetwork
from lab.server import HTTP_PORT

SERVER_IPV6 = ipaddress.IPv6Interface("fd00:99::1/64")
# The VM's management address: the template's ``ipv6`` variable lives on the profile, so the
# lab installs one VM.
HOST_IPV6 = ipaddress.IPv6Interface("fd00:99::11/64")
TEMPLATE = "fresh-static-ipv6"
# Seconds a neighbour probe waits: the kernel gives up on an address after three solicitations
# one second apart.
PROBE_SECONDS = 5


class Ipv6Report(LabReport):
    def summary(self) -> str:
        return super().summary().rsplit("\nlab: ", 1)[0] + "\n" + self.verdict("ipv6 lab")


def run_ipv6(options: LabOptions, progress: Callable[[str], None] = print) -> Ipv6Report:
    """Run the IPv6 lab once; like :func:`lab.harness.run_lab`, it reports, never raises."""
    if len(options.firmwares) != 1:
        raise LabError("ipv6", "the IPv6 lab runs one VM (its address is the profile's)")
    report = Ipv6Report(options.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress), progress
    )


class _DualStackSite:
    """The site setup hook: the bridge's IPv6 address and BIND, before DHCP and the server."""

    def __init__(self) -> None:
        self.dns: SiteDns | None = None

    def __call__(
        self, net: LabNetwork, results: Path, max_seconds: float, teardown: contextlib.ExitStack
    ) -> SiteServices:
        try:  # nodad: named binds the address at once, before duplicate detection would end
            run(
                [
                    "ip",
                    "-n",
                    net.namespace,
                    "addr",
                    "add",
                    str(SERVER_IPV6),
                    "dev",
                    net.bridge,
                    "nodad",
                ]
            )
        except CommandError as exc:
            raise LabError("network", f"cannot add {SERVER_IPV6} to {net.bridge}: {exc}") from exc
        dns = start_named(net, SERVER_IPV6, results / "named", max_seconds)
        teardown.callback(dns.process.stop)
        self.dns = dns
        return SiteServices(
            resolver=net.server_ip,
            bind="::",
            public_url=f"http://{dns.server_fqdn}:{HTTP_PORT}",
            server_env=dns.settings_env(),
        )


def _run(
    options: LabOptions,
    report: Ipv6Report,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> None:
    site = _DualStackSite()
    max_seconds = options.timeout + PROCESS_MARGIN
    lab = start_lab(replace(options, site_setup=site), report, teardown, progress, max_seconds)
    assert site.dns is not None
    progress(
        f"site DNS: named on {site.dns.server_ipv4} and {site.dns.server_ipv6}, "
        f"server public URL http://{site.dns.server_fqdn}:{HTTP_PORT}"
    )
    lab.api.call(
        "PATCH",
        f"/api/v1/profiles/{PROFILE}",
        {
            "template": TEMPLATE,
            "variables": {
                "ipv6": str(HOST_IPV6),
                "gatewayv6": str(SERVER_IPV6.ip),
                "nameservers": site.dns.server_ipv6,
            },
        },
    )
    lease_file = report.results / "dnsmasq.leases"
    report.checks = boot_and_check(lab, options)
    for vm in lab.vms:
        lease = dnsmasq.leases(lease_file).get(vm.spec.mac.lower(), "")
        report.checks += _ipv6_checks(lab.api, lab.net, site.dns, vm, lease)
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        report.failed_step = _failed_step(lab.vms, report.checks)


def _ipv6_checks(api: LabApi, net: LabNetwork, dns: SiteDns, vm: VmRun, lease: str) -> list[Check]:
    name = vm.spec.name
    facts = api.get(f"/api/v1/hosts/{vm.host_id}").get("facts") or {}
    reported = facts.get("management_ip")
    wanted = str(HOST_IPV6.ip)
    checks = [
        Check(
            f"{name} management address",
            reported == wanted,
            f"the agent reported {reported!r}; expected {wanted}",
        )
    ]
    ipv6_answers = _answers(net, wanted)
    ipv4_answers = _answers(net, lease) if lease else False
    checks.append(
        Check(
            f"{name} IPv6 only",
            ipv6_answers and bool(lease) and not ipv4_answers,
            f"{wanted} {'answers' if ipv6_answers else 'does not answer'}; the installer's "
            f"lease {lease or '(none found)'} "
            f"{'still answers' if ipv4_answers else 'no longer answers'}",
        )
    )
    askers = dns.askers(dns.server_fqdn)
    by_ipv4 = sorted(client for client, _ in askers if client == lease)
    by_ipv6 = sorted(rdtype for client, rdtype in askers if client == wanted)
    checks.append(
        Check(
            f"{name} server name resolved",
            bool(by_ipv4) and "AAAA" in by_ipv6,
            f"{dns.server_fqdn} asked from the lease {lease or '(none)'}: "
            f"{'yes' if by_ipv4 else 'no'}; from {wanted}: {', '.join(by_ipv6) or 'never'}",
        )
    )
    fqdn = f"{name}.{FORWARD_ZONE}"
    aaaa, a = dns.query(net, fqdn, "AAAA"), dns.query(net, fqdn, "A")
    checks.append(
        Check(
            f"{name} AAAA in BIND",
            aaaa == [wanted] and not a,
            f"{fqdn} AAAA {aaaa or 'none'}, A {a or 'none'}; expected AAAA {wanted} alone",
        )
    )
    pointer = HOST_IPV6.ip.reverse_pointer + "."
    ptr = dns.query(net, pointer, "PTR")
    checks.append(
        Check(
            f"{name} PTR in BIND", ptr == [fqdn], f"{pointer} PTR {ptr or 'none'}; expected {fqdn}"
        )
    )
    return checks


def _answers(net: LabNetwork, address: str) -> bool:
    """Whether a machine on the lab's link holds ``address``: a fresh neighbour lookup from
    the server's namespace (ARP or neighbour discovery) gets a link-layer address back."""
    ns = net.exec_prefix()
    run(["ip", "-n", net.namespace, "neigh", "flush", "to", address], check=False)
    url = f"http://{authority(address, 9)}/"
    run([*ns, "curl", "-s", "-o", "/dev/null", "--max-time", str(PROBE_SECONDS), url], check=False)
    shown = run(["ip", "-n", net.namespace, "-j", "neigh", "show", "to", address], check=False)
    try:
        entries = json.loads(shown.stdout or "[]")
    except ValueError:
        return False
    return any(entry.get("lladdr") for entry in entries)
