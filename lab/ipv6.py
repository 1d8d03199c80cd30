"""The IPv6 lab (``lab run --ipv6``): a host network-boots and installs over IPv4, as most racks
still do, and its dom0 is managed over IPv6 alone.

The site is dual-stack: the server's bridge has an IPv6 address besides its IPv4 one, ``serve``
binds both families (``--bind ::``), and the site's DNS (a real BIND, :mod:`lab.named`) gives the
server's name an A and an AAAA record. The server's ``public_url`` is that name, which is what
an operator would configure: iPXE and the installer resolve it over IPv4 (the site DHCP hands
out the DNS server), dom0 over IPv6 (the answer file names the same DNS server by its IPv6
address). The profile installs one of three bundled templates, all with no IPv4 on the
management interface (:class:`Addressing`): ``fresh-static-ipv6``, a static IPv6 address;
``fresh-autoconf-ipv6``, an address by SLAAC; ``fresh-dhcp-ipv6``, an address by DHCPv6. For
the last two the site's DHCP server (another machine, :mod:`lab.netns`) also takes an address in
the server's prefix and advertises that prefix as the site's router, for SLAAC or with the
managed flag and DHCPv6 leases; the installer is kept on IPv4, so its install token is bound to
its IPv4 lease, and dom0's registration from its new address gets in by the rules that do not
rest on that binding (its MAC's EUI-64, the registration key). The static run sends no router
advertisement at all.

Beyond the plain lab's chain (PXE, install, Xen, dom0, registered, in the pool as master) the
run checks that the agent reported the expected IPv6 address as its management address, that
dom0 no longer answers on the IPv4 lease its installer had but does on its IPv6 address, and that
the server wrote the host's AAAA and ip6.arpa PTR (and no A record) into BIND over RFC 2136.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

from common.errors import CommandError
from common.runner import run
from common.wire import authority
from lab import dnsmasq
from lab.api import LabApi
from lab.dnsmasq import Ipv6Offer
from lab.errors import LabError
from lab.harness import (
    INSTALLER_ARGS,
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
from lab.netns import SITE_IFACE, LabNetwork
from lab.server import HTTP_PORT
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.hosts import get_host
from pxe.store.macs import slaac_address

SERVER_IPV6 = ipaddress.IPv6Interface("fd00:99::1/64")
# The site's router, in autoconf runs: the site DHCP's machine, which advertises the prefix.
SITE_IPV6 = ipaddress.IPv6Interface("fd00:99::2/64")
# The VM's static management address: the template's ``ipv6`` variable lives on the profile, so
# the lab installs one VM.
HOST_IPV6 = ipaddress.IPv6Interface("fd00:99::11/64")
# Seconds a neighbour probe waits: the kernel gives up on an address after three solicitations
# one second apart.
PROBE_SECONDS = 5


class Addressing(StrEnum):
    """How the VM's dom0 takes its IPv6 management address."""

    STATIC = "static"  # the profile's ``ipv6``
    AUTOCONF = "autoconf"  # SLAAC, from the site's router advertisements
    DHCP = "dhcp"  # DHCPv6, from the site's DHCP server, the router advertising managed

    @property
    def template(self) -> str:
        """The bundled answer-file template the lab's profile installs."""
        return f"fresh-{self.value}-ipv6"


def management_address(addressing: Addressing, mac: str) -> ipaddress.IPv6Address | None:
    """Where the VM with ``mac`` must be managed: the profile's address, or the one SLAAC forms
    from the advertised prefix and the MAC (dom0's bridge carries its NIC's); None on DHCPv6,
    whose lease nobody knows in advance."""
    if addressing is Addressing.AUTOCONF:
        return slaac_address(SERVER_IPV6.network, mac)
    if addressing is Addressing.DHCP:
        return None
    return HOST_IPV6.ip


class Ipv6Report(LabReport):
    def summary(self) -> str:
        return super().summary().rsplit("\nlab: ", 1)[0] + "\n" + self.verdict("ipv6 lab")


def run_ipv6(
    options: LabOptions,
    progress: Callable[[str], None] = print,
    addressing: Addressing = Addressing.STATIC,
) -> Ipv6Report:
    """Run the IPv6 lab once; like :func:`lab.harness.run_lab`, it reports, never raises."""
    if len(options.firmwares) != 1:
        raise LabError("ipv6", "the IPv6 lab runs one VM (its address is the profile's)")
    report = Ipv6Report(options.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress, addressing), progress
    )


class _DualStackSite:
    """The site setup hook: the bridge's IPv6 address and BIND, before DHCP and the server; for
    an autoconf run, the site's router too."""

    def __init__(self, addressing: Addressing = Addressing.STATIC) -> None:
        self.addressing = addressing
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
        advertised = None
        if self.addressing is not Addressing.STATIC:
            _site_router(net)
            dhcpv6 = self.addressing is Addressing.DHCP
            advertised = Ipv6Offer(
                SERVER_IPV6.network, dhcpv6=dhcpv6, resolver=dns.server_ipv6 if dhcpv6 else ""
            )
        return SiteServices(
            resolver=net.server_ip,
            advertised=advertised,
            bind="::",
            public_url=f"http://{dns.server_fqdn}:{HTTP_PORT}",
            server_env=dns.settings_env(),
        )


def _site_router(net: LabNetwork) -> None:
    """Ready the site's machine to advertise the server's prefix (dnsmasq advertises a prefix
    only where it holds an address in it), and keep it and the server's bridge to their one
    address each: neither takes anything from the advertisements, so the router does not
    configure itself from its own (the kernel can hear them looped back) and the server is where
    its name says."""
    commands = (
        ["ip", "-n", net.site_namespace, "addr", "add", str(SITE_IPV6), "dev", SITE_IFACE, "nodad"],
        [*net.site_exec_prefix(), "sysctl", "-qw", f"net.ipv6.conf.{SITE_IFACE}.accept_ra=0"],
        [*net.exec_prefix(), "sysctl", "-qw", f"net.ipv6.conf.{net.bridge}.accept_ra=0"],
    )
    for argv in commands:
        try:
            run(argv)
        except CommandError as exc:
            raise LabError("network", f"cannot make the site's router: {exc}") from exc


def _run(
    options: LabOptions,
    report: Ipv6Report,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
    addressing: Addressing,
) -> None:
    site = _DualStackSite(addressing)
    max_seconds = options.timeout + PROCESS_MARGIN
    lab = start_lab(replace(options, site_setup=site), report, teardown, progress, max_seconds)
    assert site.dns is not None
    progress(
        f"site DNS: named on {site.dns.server_ipv4} and {site.dns.server_ipv6}, "
        f"server public URL http://{site.dns.server_fqdn}:{HTTP_PORT}"
    )
    variables = {"nameservers": site.dns.server_ipv6}
    changes: dict[str, object] = {"template": addressing.template}
    if addressing is Addressing.STATIC:
        variables |= {"ipv6": str(HOST_IPV6), "gatewayv6": str(SERVER_IPV6.ip)}
    else:
        how = "with DHCPv6 leases" if addressing is Addressing.DHCP else "for SLAAC"
        progress(f"site router: {SITE_IPV6.ip} advertises {SERVER_IPV6.network} {how}")
        # The installer stays on IPv4, so its token is bound to its lease; otherwise it would
        # take an IPv6 address too, perhaps dom0's, and the registration pass on the binding.
        changes["kernel_args"] = f"{INSTALLER_ARGS} ipv6.disable=1"
    lab.api.call("PATCH", f"/api/v1/profiles/{PROFILE}", {**changes, "variables": variables})
    lease_file = report.results / "dnsmasq.leases"
    report.checks = boot_and_check(lab, options)
    for vm in lab.vms:
        lease = dnsmasq.leases(lease_file).get(vm.spec.mac.lower(), "")
        address = management_address(addressing, vm.spec.mac)
        if address is None:
            address, leased = _leased_address(lab.api, vm, lease_file)
            report.checks.append(leased)
        report.checks += _ipv6_checks(lab.api, lab.net, site.dns, vm, lease=lease, address=address)
        if addressing is not Addressing.STATIC and vm.host_id is not None:
            bound = _bound_address(lab.server_spec.data_dir, vm.host_id)
            report.checks.append(
                Check(
                    f"{vm.spec.name} token bound to the lease",
                    bool(lease) and bound == lease,
                    f"its install token is bound to {bound}; the installer's lease is "
                    f"{lease or '(none found)'}, so no binding let dom0's {address} in",
                )
            )
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        report.failed_step = _failed_step(lab.vms, report.checks)


def _ipv6_checks(
    api: LabApi,
    net: LabNetwork,
    dns: SiteDns,
    vm: VmRun,
    *,
    lease: str,
    address: ipaddress.IPv6Address,
) -> list[Check]:
    name = vm.spec.name
    facts = api.get(f"/api/v1/hosts/{vm.host_id}").get("facts") or {}
    reported = facts.get("management_ip")
    wanted = str(address)
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
    pointer = address.reverse_pointer + "."
    ptr = dns.query(net, pointer, "PTR")
    checks.append(
        Check(
            f"{name} PTR in BIND", ptr == [fqdn], f"{pointer} PTR {ptr or 'none'}; expected {fqdn}"
        )
    )
    return checks


def _leased_address(
    api: LabApi, vm: VmRun, lease_file: Path
) -> tuple[ipaddress.IPv6Address, Check]:
    """The DHCPv6 VM's management address as its agent reported it, and whether the site's
    DHCPv6 server leased it (the :data:`~ipaddress.IPv6Address` ``::`` when none was reported)."""
    facts = api.get(f"/api/v1/hosts/{vm.host_id}").get("facts") or {}
    reported = str(facts.get("management_ip") or "")
    leased = dnsmasq.ipv6_leases(lease_file)
    try:
        address = ipaddress.IPv6Address(reported)
    except ValueError:
        address = ipaddress.IPv6Address("::")
    check = Check(
        f"{vm.spec.name} DHCPv6 lease",
        reported in leased,
        f"the agent reported {reported or 'no address'}; DHCPv6 leased "
        f"{', '.join(sorted(leased)) or 'nothing'}",
    )
    return address, check


def _bound_address(data_dir: Path, host_id: int) -> str | None:
    """The address the host's install token is bound to. No API shows it (it is the server's
    own defence), so the lab reads its server's inventory, as anyone with the data directory
    can."""
    database = Database(Settings(data_dir=data_dir).database)
    try:
        with database.scope(write=False) as session:
            return get_host(session, host_id).token_bound_addr
    finally:
        database.dispose()


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
