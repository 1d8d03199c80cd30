"""The first-boot agent's network facts, read from real interfaces in a network namespace.

The agent reports the backend that runs, whatever the answer file asked: a Linux bridge holding
the management address, a bridge of a running Open vSwitch, or a bare NIC. It runs under the
system's python3 inside the namespace (``ip netns exec`` gives it the namespace's /sys), as it
runs in dom0. Open vSwitch runs with its userspace datapath, in the namespace: this kernel has
no openvswitch module, and the agent asks the daemons, not the kernel. The VM lab proves the
kernel datapath in a real dom0.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.runner import run, start
from images.overlay import AGENT_SOURCE

pytestmark = pytest.mark.root

MAC = "52:54:00:0a:0b:0c"
ADDRESS = "10.88.0.1"
# Nothing listens there: the agent finds its management address with a UDP connect.
SERVER_URL = "http://10.88.0.2:8080"
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OVS_VSWITCHD = Path("/usr/sbin/ovs-vswitchd")
COLLECT = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import agent
facts = agent.collect_facts(Path(sys.argv[2]), {"server_url": sys.argv[3]})
print(json.dumps({key: facts[key] for key in sys.argv[4:]}))
"""
KEYS = ("network_backend", "management_interface", "management_ip", "management_vlan", "mac")


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"xcpagent-{os.getpid()}"
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        # eth0 is the NIC; its peer stands for the switch port.
        run(["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "port0"])
        run(["ip", "-n", name, "link", "set", "eth0", "address", MAC])
        for link in ("eth0", "port0"):
            run(["ip", "-n", name, "link", "set", link, "up"])
        yield name
    finally:
        run(["ip", "netns", "del", name], check=False)


def _facts(ns: str, tmp_path: Path, env: dict[str, str] | None = None) -> dict:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    out = run(
        ["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", COLLECT,
         str(AGENT_SOURCE.parent), str(root), SERVER_URL, *KEYS],
        env=env, timeout=120,
    ).stdout  # fmt: skip
    return json.loads(out)


def _address(ns: str, device: str) -> None:
    run(["ip", "-n", ns, "addr", "add", f"{ADDRESS}/24", "dev", device])
    run(["ip", "-n", ns, "link", "set", device, "up"])


def test_a_linux_bridge_holding_the_address_is_the_bridge_backend(
    netns: str, tmp_path: Path
) -> None:
    run(["ip", "-n", netns, "link", "add", "xenbr0", "address", MAC, "type", "bridge"])
    run(["ip", "-n", netns, "link", "set", "eth0", "master", "xenbr0"])
    _address(netns, "xenbr0")
    assert _facts(netns, tmp_path) == {
        "network_backend": "bridge",
        "management_interface": "xenbr0",
        "management_ip": ADDRESS,
        "management_vlan": None,
        "mac": MAC,
    }


def test_an_address_on_a_bare_nic_is_no_backend(netns: str, tmp_path: Path) -> None:
    _address(netns, "eth0")
    facts = _facts(netns, tmp_path)
    assert facts["network_backend"] == "none"
    assert facts["management_interface"] == "eth0"


def test_an_address_on_a_port_of_a_linux_bridge_is_the_bridge_backend(
    netns: str, tmp_path: Path
) -> None:
    run(["ip", "-n", netns, "link", "add", "xenbr0", "type", "bridge"])
    run(["ip", "-n", netns, "link", "set", "eth0", "master", "xenbr0"])
    _address(netns, "eth0")
    assert _facts(netns, tmp_path)["network_backend"] == "bridge"


@pytest.fixture
def ovsdb(netns: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An ovsdb-server of our own on a private run directory (``OVS_RUNDIR``: where every OVS
    tool, the agent's included, finds the daemons' sockets)."""
    if not (OVS_VSWITCHD.exists() and OVS_SCHEMA.exists()):
        pytest.skip("Open vSwitch is not installed (make test installs openvswitch-switch)")
    rundir = tmp_path / "ovs"
    rundir.mkdir()
    env = {key: str(rundir) for key in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR")}
    run(["ovsdb-tool", "create", rundir / "conf.db", OVS_SCHEMA])
    with _daemon(
        ["ip", "netns", "exec", netns, "ovsdb-server", rundir / "conf.db",
         f"--remote=punix:{rundir}/db.sock", "--pidfile", f"--log-file={rundir}/ovsdb-server.log"],
        env,
    ):  # fmt: skip
        _wait_for((rundir / "db.sock").exists, "ovsdb-server's socket")
        run(["ovs-vsctl", "--timeout=10", "--no-wait", "init"], env=env)
        yield env


@pytest.fixture
def ovs(netns: str, ovsdb: dict[str, str]) -> Iterator[dict[str, str]]:
    """ovs-vswitchd in the namespace, on our database."""
    rundir = ovsdb["OVS_RUNDIR"]
    with _daemon(
        ["ip", "netns", "exec", netns, OVS_VSWITCHD, f"unix:{rundir}/db.sock", "--pidfile",
         f"--log-file={rundir}/ovs-vswitchd.log"],
        ovsdb,
    ):  # fmt: skip
        appctl = ["ovs-appctl", "--timeout=5", "-t", "ovs-vswitchd", "version"]
        _wait_for(
            lambda: run(appctl, env=ovsdb, check=False).returncode == 0,
            "ovs-vswitchd's control socket",
        )
        yield ovsdb


@contextlib.contextmanager
def _daemon(argv: list, env: dict[str, str]) -> Iterator[None]:
    """A daemon in the foreground, ended by its own pid (``ip netns exec`` execs it)."""
    proc = start(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_for(ready, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not appear within {seconds:.0f} s")
        time.sleep(0.2)


def test_an_open_vswitch_bridge_holding_the_address_is_openvswitch(
    netns: str, ovs: dict[str, str], tmp_path: Path
) -> None:
    # What the installer's stanza has openvswitch-switch's hook run, on the userspace datapath.
    run(
        ["ovs-vsctl", "--timeout=10", "--", "add-br", "xenbr0",
         "--", "set", "bridge", "xenbr0", "datapath_type=netdev", f'other-config:hwaddr="{MAC}"',
         "--", "add-port", "xenbr0", "eth0"],
        env=ovs,
    )  # fmt: skip
    _address(netns, "xenbr0")
    facts = _facts(netns, tmp_path, env=ovs)
    assert facts == {
        "network_backend": "openvswitch",
        "management_interface": "xenbr0",
        "management_ip": ADDRESS,
        "management_vlan": None,
        "mac": MAC,
    }
    # The bridge took the NIC's MAC from other-config:hwaddr, as DHCP and the pool need.
    bridge_mac = run(["ip", "-n", netns, "-j", "link", "show", "xenbr0"]).stdout
    assert json.loads(bridge_mac)[0]["address"] == MAC


def test_a_bridge_only_in_the_database_is_no_backend(
    netns: str, ovsdb: dict[str, str], tmp_path: Path
) -> None:
    """ovsdb lists xenbr0, but no ovs-vswitchd runs it: the address is on a plain device."""
    run(["ovs-vsctl", "--timeout=10", "--no-wait", "add-br", "xenbr0"], env=ovsdb)
    assert run(["ovs-vsctl", "--timeout=10", "list-br"], env=ovsdb).stdout.split() == ["xenbr0"]
    run(["ip", "-n", netns, "link", "add", "xenbr0", "type", "veth", "peer", "name", "xenbr0p"])
    run(["ip", "-n", netns, "link", "set", "xenbr0p", "up"])
    _address(netns, "xenbr0")
    facts = _facts(netns, tmp_path, env=ovsdb)
    assert facts["management_interface"] == "xenbr0"
    assert facts["network_backend"] == "none"
