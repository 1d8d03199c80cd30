"""A host managed over IPv6 registers for real: ``xcp-provision serve`` and the first-boot agent
in two network namespaces joined by an IPv6-only link, a real BIND beside the server.

The server listens on its IPv6 address alone, its ``public_url`` an IPv6 literal. The host's
installer fetches the answer file over the link and reports build-done with the installer's own
reporter; the installer's own code turns the answer file into the agent's brief; the host then
takes the static address the answer file gives it (as the installed dom0 does), and the agent
registers from there under the system's python3, as in dom0. The installer fetched from another
address than the one dom0 comes up on, as a host that network-boots over IPv4 does: the profile's
static ``ipv6`` is what lets the registration through. Only ``xl`` is a stand-in: there is no
Xen here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dns.reversename
import pytest

from answerfiles.model import AnswerFile
from answerfiles.parse import parse_answerfile
from common import dom0_layout, registration_key, wire
from common.runner import run
from dom0.firstboot import agent
from images.overlay import AGENT_SOURCE, install_overlay
from installer.hostconfig import write_firstboot
from installer.progress import BuildDone, HttpReporter
from pxe.db.session import Database
from pxe.registration import register
from pxe.store.hosts import add_host, get_host
from pxe.store.lifecycle import State
from pxe.store.macs import slaac_address
from pxe.store.pools import create_pool
from pxe.store.profiles import create_profile
from pxe.store.tokens import issue_install_token
from tests.support.bind import BindServer, running_bind
from tests.support.netns import Link, address, in_netns, veth_link
from tests.support.registering import events_of, facts, installed_host, mac_of, rack_inventory
from tests.support.serve import free_port, serve_process

pytestmark = pytest.mark.root

SERVER_IP = "2001:db8:6::1"
INSTALLER_IP = "2001:db8:6::99"  # the installer's address; in a rack often an IPv4 lease
HOST_CIDR = "2001:db8:6::2/64"  # what the profile gives dom0
RELEASE = "debian12-xcp.test"
XL_INFO = "xen_major : 4\nxen_minor : 17\nxen_extra : .7\nnr_cpus : 4\ntotal_memory : 8192\n"


@dataclass(frozen=True)
class Site:
    link: Link
    public_url: str
    database: Database
    bind: BindServer
    path: str  # the agent's PATH: the stand-in xl first


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tmp = tmp_path_factory.mktemp("ipv6")
    with ExitStack() as stack:
        link = stack.enter_context(veth_link(f"v6r{os.getpid() % 100000}", host_mac=mac_of(6)))
        stack.enter_context(address(link.server_ns, link.server_if, f"{SERVER_IP}/64"))
        bind = in_netns(
            link.server_ns, lambda: stack.enter_context(running_bind(tmp / "bind", host="::1"))
        )
        data = tmp / "data"
        database = stack.enter_context(rack_inventory(data))
        port = free_port()  # any port is free in a new namespace: this one is free here too
        public_url = f"http://[{SERVER_IP}]:{port}"
        env = {
            "XCP_PROVISION_PUBLIC_URL": public_url,
            "XCP_PROVISION_DNS_SERVER": bind.host,
            "XCP_PROVISION_DNS_PORT": str(bind.port),
            "XCP_PROVISION_DNS_FORWARD_ZONE": bind.forward_zone,
            "XCP_PROVISION_DNS_REVERSE_ZONES": f"{bind.reverse_zone},{bind.reverse6_zone}",
            "XCP_PROVISION_DNS_KEY_NAME": bind.key_name,
            "XCP_PROVISION_DNS_KEY_ALGORITHM": bind.algorithm,
            "XCP_PROVISION_DNS_KEY_FILE": str(bind.key_file),
        }
        served = serve_process(data, "--tftp-port", "0", "--no-dhcp", "--workers", "1",
                               http_port=port, env=env, bind=SERVER_IP)  # fmt: skip
        in_netns(link.server_ns, lambda: stack.enter_context(served))
        xl = tmp / "xen-bin" / "xl"
        xl.parent.mkdir()
        xl.write_text(f"#!/bin/sh\n[ \"$1\" = info ] || exit 1\ncat <<'EOF'\n{XL_INFO}EOF\n")
        xl.chmod(0o755)
        yield Site(link, public_url, database, bind, f"{xl.parent}:{os.environ['PATH']}")


def _installer(site: Site, root: Path, host_id: int, token: str, mac: str = mac_of(6)) -> str:
    """What the installer does over the network, from the host's namespace: fetch the answer
    file, write the agent's brief from it (``mac``: the management NIC's), report build-done
    with the hash of the registration key the brief holds.
    Returns the answer file."""

    def install() -> str:
        url = wire.answerfile_url(site.public_url, host_id, token)
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        answers = parse_answerfile(text).answers
        key_sha256 = write_firstboot(root, answers, mac)
        reporter = HttpReporter(answers.provisioning.server_url, token, final_patience=10)
        reporter.done(BuildDone(key_sha256))
        return text

    return in_netns(site.link.host_ns, install)


def _agent(site: Site, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", site.link.host_ns, "/usr/bin/python3", str(AGENT_SOURCE),
         "--root", str(root), "--backoff-base", "0.05", "--max-attempts", "3", *args],
        capture_output=True, text=True, timeout=120, env={"PATH": site.path}, check=False,
    )  # fmt: skip


def _wait_link_local(site: Site, seconds: float = 30) -> None:
    """Until the host's fe80:: address has passed duplicate address detection."""
    deadline = time.monotonic() + seconds
    while True:
        shown = run(["ip", "-n", site.link.host_ns, "-6", "addr", "show", "dev",
                     site.link.host_if, "scope", "link"]).stdout  # fmt: skip
        if "fe80::" in shown and "tentative" not in shown:
            return
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


def _installed(
    site: Site, root: Path, template: str, variables: dict[str, str], *, mac: str, hostname: str
) -> tuple[int, AnswerFile]:
    """A host of a profile on ``template`` (pool and profile named after the host) installed
    into ``root`` from the installer's IPv4 address. Returns its id and answer file."""
    with site.database.scope() as session:
        create_pool(session, hostname)
        create_profile(session, hostname, release=RELEASE, template=template, pool=hostname,
                       variables={"primary_disk": "sda", **variables})  # fmt: skip
        host = add_host(session, macs=[mac], hostname=hostname, profile=hostname,
                        state=State.INSTALLING)  # fmt: skip
        token = issue_install_token(host)
        host_id = host.id
    install_overlay(root, RELEASE)
    with address(site.link.host_ns, site.link.host_if, f"{INSTALLER_IP}/64"):
        return host_id, parse_answerfile(_installer(site, root, host_id, token, mac)).answers


def _pool_conf(root: Path) -> dict[str, str]:
    text = dom0_layout.inside(root, dom0_layout.POOL_CONFIG).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_an_ipv6_managed_host_installs_registers_and_lands_in_dns(
    site: Site, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    host_id, answerfile = _installed(
        site, root, "fresh-static-ipv6", {"ipv6": HOST_CIDR, "gatewayv6": SERVER_IP},
        mac=mac_of(6), hostname="node-v6",
    )  # fmt: skip
    # Every URL the server built for the host has its IPv6 literal in brackets.
    assert answerfile.provisioning.server_url == site.public_url
    assert answerfile.sources[0].location == f"{site.public_url}/releases/{RELEASE}/"
    brief = json.loads(dom0_layout.inside(root, dom0_layout.FIRSTBOOT_CONFIG).read_text())
    assert brief["server_url"] == site.public_url
    iface = answerfile.admin_interface
    assert (iface.proto.value, iface.protov6.value, iface.ipv6) == ("none", "static", HOST_CIDR)

    # dom0 comes up on the answer file's address, IPv6 alone.
    with address(site.link.host_ns, site.link.host_if, iface.ipv6) as host_ip:
        result = _agent(site, root)
        assert result.returncode == agent.EXIT_OK, result.stderr
        assert "reported: software RAID" in result.stderr  # the first health report, too

    conf = _pool_conf(root)
    assert (conf["STATE"], conf["POOL"], conf["ROLE"]) == ("in-pool", "node-v6", "master")
    assert conf["MASTER_ADDRESS"] == host_ip
    report = json.loads(dom0_layout.inside(root, dom0_layout.REPORT_CONFIG).read_text())
    assert report["server_url"] == site.public_url
    with site.database.scope(write=False) as session:
        row = get_host(session, host_id)
        assert (row.state, row.token_bound_addr) == (State.IN_POOL.value, INSTALLER_IP)
        recorded = dict(row.facts)
    assert recorded["management_ip"] == host_ip
    assert recorded["management_interface"] == site.link.host_if
    assert (recorded["mac"], recorded["xen_version"]) == (mac_of(6), "4.17.7")
    assert recorded["dom0_release"] == RELEASE

    ptr = dns.reversename.from_address(host_ip).to_text()
    assert in_netns(site.link.server_ns, lambda: site.bind.query("node-v6.xcp.test.", "AAAA")) == [
        host_ip
    ]
    assert in_netns(site.link.server_ns, lambda: site.bind.query(ptr, "PTR")) == [
        "node-v6.xcp.test."
    ]
    assert ptr.endswith(site.bind.reverse6_zone)
    assert events_of(site.database, 6, "dns") == [
        f"added node-v6.xcp.test. AAAA {host_ip}",
        f"added {ptr} PTR node-v6.xcp.test.",
    ]


def _brief(root: Path) -> Path:
    return dom0_layout.inside(root, dom0_layout.FIRSTBOOT_CONFIG)


def _edit_key(root: Path, key: str | None) -> None:
    """Set the registration key of the agent's brief; None removes it."""
    brief = json.loads(_brief(root).read_text())
    brief.pop(registration_key.FIELD, None)
    if key is not None:
        brief[registration_key.FIELD] = key
    _brief(root).write_text(json.dumps(brief))


def test_an_autoconf_host_registers_from_its_macs_slaac_address_alone(
    site: Site, tmp_path: Path
) -> None:
    """``protov6="autoconf"``: no address is known in advance, but SLAAC forms dom0's from the
    router's prefix and the MAC's EUI-64. The inventory's MAC lets that one through, key or no
    key; without the key, another interface identifier on the same prefix is refused, and the
    token stays unspent."""
    mac = mac_of(11)
    root = tmp_path / "root"
    host_id, answerfile = _installed(
        site, root, "fresh-autoconf-ipv6", {"nameservers": SERVER_IP}, mac=mac, hostname="node-v6d"
    )
    _edit_key(root, None)
    iface = answerfile.admin_interface
    assert (iface.proto.value, iface.protov6.value, iface.ipv6) == ("none", "autoconf", None)
    slaac = slaac_address(ipaddress.IPv6Network(f"{SERVER_IP}/64", strict=False), mac)
    assert str(slaac).endswith(":5054:ff:fe00:b")

    with address(site.link.host_ns, site.link.host_if, f"{slaac + 1}/64") as other:
        refused = _agent(site, root)
    assert refused.returncode == agent.EXIT_REFUSED, refused.stderr
    assert "HTTP 403" in refused.stderr and f"not {other}" in refused.stderr
    [event] = events_of(site.database, 11, "security")
    assert event.startswith(f"registration refused: this install token is bound to the address "
                            f"its install used, not {other} ")  # fmt: skip

    with address(site.link.host_ns, site.link.host_if, f"{slaac}/64") as host_ip:
        result = _agent(site, root)
    assert result.returncode == agent.EXIT_OK, result.stderr
    conf = _pool_conf(root)
    assert (conf["STATE"], conf["POOL"], conf["MASTER_ADDRESS"]) == ("in-pool", "node-v6d", host_ip)
    with site.database.scope(write=False) as session:
        row = get_host(session, host_id)
        assert (row.state, row.token_bound_addr) == (State.IN_POOL.value, INSTALLER_IP)
        assert row.facts["management_ip"] == str(slaac)
    assert in_netns(site.link.server_ns, lambda: site.bind.query("node-v6d.xcp.test.", "AAAA")) == [
        host_ip
    ]


def test_a_host_whose_address_is_unknown_in_advance_registers_with_its_key(
    site: Site, tmp_path: Path
) -> None:
    """A dom0 whose address comes from DHCPv6 (or any other address than its install used):
    no rule on addresses knows it, but its installer left a registration key on its disk and
    announced the key's hash with build-done. The real agent sends the key from an arbitrary
    address on the link and is admitted; without the key, or with another one, it is refused
    as before (a security event, the token unspent). The key is never kept among the facts,
    and the agent forgets it with the token."""
    mac = mac_of(12)
    root = tmp_path / "root"
    host_id, _ = _installed(
        site, root, "fresh-autoconf-ipv6", {"nameservers": SERVER_IP}, mac=mac, hostname="node-v6e"
    )
    key = json.loads(_brief(root).read_text())[registration_key.FIELD]
    with site.database.scope(write=False) as session:
        assert get_host(session, host_id).registration_key_hash == registration_key.digest(key)
    leased = "2001:db8:6::d6c6"  # a DHCPv6 lease: not the MAC's EUI-64, not the install's
    slaac = slaac_address(ipaddress.IPv6Network(f"{SERVER_IP}/64", strict=False), mac)
    assert leased not in (str(slaac), INSTALLER_IP)

    for wrong in (None, key[:-1] + ("A" if key[-1] != "A" else "B")):
        _edit_key(root, wrong)
        with address(site.link.host_ns, site.link.host_if, f"{leased}/64"):
            refused = _agent(site, root)
        assert refused.returncode == agent.EXIT_REFUSED, refused.stderr
        assert "HTTP 403" in refused.stderr and "no registration key matched" in refused.stderr
    events = events_of(site.database, 12, "security")
    assert len(events) == 2
    assert all(f"bound to the address its install used, not {leased} " in e for e in events)
    assert not any(key[:8] in e for e in events)
    with site.database.scope(write=False) as session:
        row = get_host(session, host_id)
        assert (row.state, row.token_spent) == (State.INSTALLED.value, False)

    _edit_key(root, key)
    with address(site.link.host_ns, site.link.host_if, f"{leased}/64") as host_ip:
        result = _agent(site, root)
    assert result.returncode == agent.EXIT_OK, result.stderr
    assert key not in result.stderr
    conf = _pool_conf(root)
    assert (conf["STATE"], conf["POOL"], conf["MASTER_ADDRESS"]) == ("in-pool", "node-v6e", host_ip)
    assert registration_key.FIELD not in json.loads(_brief(root).read_text())
    with site.database.scope(write=False) as session:
        row = get_host(session, host_id)
        assert (row.state, row.token_bound_addr) == (State.IN_POOL.value, INSTALLER_IP)
        assert row.facts["management_ip"] == leased
        assert key not in json.dumps(row.facts)
    assert in_netns(site.link.server_ns, lambda: site.bind.query("node-v6e.xcp.test.", "AAAA")) == [
        host_ip
    ]


def test_an_ipv6_host_is_refused_by_a_pool_whose_master_is_ipv4(site: Site, tmp_path: Path) -> None:
    cpu_vendor = agent.cpu_facts({})["cpu_vendor"]
    with site.database.scope() as session:
        create_pool(session, "mixed")
    master = facts(7, pool="mixed", xen_version="4.17.7", dom0_release=RELEASE,
                   cpu_vendor=cpu_vendor, network_backend="none")  # fmt: skip
    answer = register(site.database, installed_host(site.database, 7, pool="mixed"), master)
    assert (answer.role, answer.master_address) == ("master", master["management_ip"])

    token = installed_host(site.database, 8, pool="mixed", hostname="node-v6b")
    root = tmp_path / "root"
    install_overlay(root, RELEASE)
    dom0_layout.inside(root, dom0_layout.FIRSTBOOT_CONFIG).write_text(json.dumps(
        {"server_url": site.public_url, "token": token, "hostname": "node-v6b", "mac": mac_of(8)}
    ))  # fmt: skip
    with address(site.link.host_ns, site.link.host_if, "2001:db8:6::8/64") as host_ip:
        result = _agent(site, root)
    assert result.returncode == agent.EXIT_NOT_JOINED, result.stderr
    sentence = (
        f"Management address {host_ip} is IPv6, the master's {master['management_ip']} is IPv4."
    )
    assert f"(reasons: {sentence})" in result.stderr
    assert _pool_conf(root)["STATE"] == "registered"
    with site.database.scope(write=False) as session:
        row = get_host(session, mac_of(8))
        assert (row.state, row.refusal_reasons) == (State.REGISTERED.value, [sentence])


@pytest.mark.parametrize(("index", "scope", "seen"),
                         [(9, "link-local", "fe80::"), (10, "loopback", "::1")])  # fmt: skip
def test_the_agent_waits_while_no_usable_address_reaches_the_server(
    site: Site, tmp_path: Path, index: int, scope: str, seen: str
) -> None:
    """Duplicate address detection keeps a new address tentative (here 10 probes 1 s apart,
    so that the agent's two attempts fall inside it even on a loaded machine), and meanwhile
    the kernel reaches an on-link server from fe80::, or, while fe80:: is tentative too (the
    link just came up), from ::1. Registered, fe80:: would be refused (not the address the
    token allows) or land in the pool and DNS; from ::1 the connection hangs until its
    timeout."""
    token = installed_host(site.database, index, hostname=f"node-v6c{index}")
    root = tmp_path / "root"
    install_overlay(root, RELEASE)
    dom0_layout.inside(root, dom0_layout.FIRSTBOOT_CONFIG).write_text(json.dumps(
        {"server_url": site.public_url, "token": token, "hostname": f"node-v6c{index}",
         "mac": mac_of(index)}
    ))  # fmt: skip
    for knob in ("conf.{}.dad_transmits=10", "neigh.{}.retrans_time_ms=1000"):
        run(["ip", "netns", "exec", site.link.host_ns, "sysctl", "-qw",
             "net.ipv6." + knob.format(site.link.host_if)])  # fmt: skip
    _wait_link_local(site)
    if scope == "loopback":  # down and up: fe80:: goes through its own detection again
        for state in ("down", "up"):
            run(["ip", "-n", site.link.host_ns, "link", "set", site.link.host_if, state])
    try:
        with address(site.link.host_ns, site.link.host_if, f"2001:db8:6::{index}/64", dad=True):
            result = _agent(site, root, "--max-attempts", "2")
    finally:
        run(["ip", "netns", "exec", site.link.host_ns, "sysctl", "-qw",
             f"net.ipv6.conf.{site.link.host_if}.dad_transmits=1"])  # fmt: skip
        _wait_link_local(site)  # the next test finds the link as it was
    assert result.returncode == agent.EXIT_GAVE_UP, result.stderr
    assert f"attempt 1: only the {scope} {seen}" in result.stderr
    with site.database.scope(write=False) as session:
        row = get_host(session, mac_of(index))
        assert (row.state, row.token_bound_addr) == (State.INSTALLED.value, None)
