"""The real dom0 image: built through the cache, inspected, then booted as PV dom0 under Xen.

The boot is the proof that matters: Xen 4.17 (from the same build cache) starts the image's
kernel and initrd under QEMU TCG, the initrd finds the root filesystem by LABEL on an ext3 disk,
systemd comes up and a getty prints a login prompt on hvc0, which Xen relays to the serial log;
ifupdown brings up the Linux bridge xenbr0 over eth0 from the stanzas the installer writes for
``<network-backend>bridge``, and the first-boot agent registers with real facts from a real Xen,
the bridge among them. (The VM lab installs the default, Open vSwitch, and checks it the same way.)
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from answerfiles.model import AdminInterface, NetworkBackend
from common import dom0_layout
from common.dom0_layout import inside
from common.runner import run, start
from dom0.firstboot import agent as agent_module
from images import xen
from images.cache import BuildCache, default_cache_dir
from images.dom0 import Dom0Image, build_dom0
from installer import hostconfig
from installer.dom0_network import ManagementNetwork
from tests.images.vm import stop_vm

BOOT_TIMEOUT = 420
ROOT_LABEL = "root-xcptst"


@pytest.fixture(scope="module")
def dom0_image() -> Dom0Image:
    image, _ = build_dom0(BuildCache(default_cache_dir()))
    return image


@pytest.fixture(scope="module")
def dom0_tree(dom0_image: Dom0Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dom0") / "root"
    root.mkdir()
    run(["tar", "--extract", "--zstd", "--numeric-owner", "-f", dom0_image.rootfs, "-C", root])
    return root


@pytest.mark.slow
def test_dom0_image_contents(dom0_image: Dom0Image, dom0_tree: Path) -> None:
    root = dom0_tree
    assert dom0_image.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage
    assert (root / "boot" / f"vmlinuz-{dom0_image.kernel_version}").is_file()
    assert (root / "boot" / f"initrd.img-{dom0_image.kernel_version}").is_file()
    assert list((root / "boot").glob("xen-4.17-amd64.gz"))
    for tool in ("usr/sbin/xl", "usr/sbin/sshd", "usr/bin/python3", "usr/sbin/ifup", "sbin/init"):
        assert (root / tool).exists(), tool
    assert (root / "sbin" / "dhclient").exists()
    # Both network backends: Open vSwitch (the default) and Linux bridges, each with its ifupdown
    # hook; Xen's vif script for each; Open vSwitch started at boot.
    for tool in ("usr/bin/ovs-vsctl", "usr/bin/ovs-appctl", "usr/sbin/ovs-vswitchd",
                 "usr/sbin/ovsdb-server", "sbin/brctl", "etc/xen/scripts/vif-openvswitch",
                 "etc/xen/scripts/vif-bridge", "etc/network/if-pre-up.d/openvswitch",
                 "etc/network/if-pre-up.d/bridge", "etc/xen/xl.conf"):  # fmt: skip
        assert (root / tool).exists() or (root / tool).is_symlink(), tool
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "openvswitch-switch.service").is_symlink()
    assert (root / dom0_layout.UNIT_WANTS.lstrip("/")).is_symlink()
    assert (root / dom0_layout.AGENT.lstrip("/")).read_bytes() == (
        Path(agent_module.__file__)
    ).read_bytes()
    assert (root / dom0_layout.HVC0_GETTY.lstrip("/")).is_symlink()
    dhclient = inside(root, dom0_layout.DHCLIENT_CONF).read_text().splitlines()
    assert dom0_layout.DHCLIENT_IDENTIFIER in dhclient
    assert any(line.startswith("request ") for line in dhclient)  # Debian's own file, kept
    assert (root / dom0_layout.SERIAL_GETTY_UNIT.lstrip("/")).is_file()
    assert not list((root / "etc" / "ssh").glob("ssh_host_*"))
    assert (root / "etc" / "machine-id").read_text() == ""
    assert (root / dom0_layout.RELEASE_FILE.lstrip("/")).read_text().strip() == dom0_image.version
    assert "source /etc/network/interfaces.d/*" in (root / "etc/network/interfaces").read_text()
    assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
    # The agent runs under the image's own python3, standard library only.
    run(["chroot", root, "/usr/bin/python3", dom0_layout.AGENT, "--help"])


class _Registrar(BaseHTTPRequestHandler):
    """The registration endpoint as the server answers a pool's first host."""

    bodies: list[dict] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(
            {"auth": self.headers.get("Authorization"), **json.loads(self.rfile.read(length))}
        )
        answer = json.dumps(
            {"state": "in-pool", "pool": "rack1", "role": "master", "master_address": None,
             "pool_secret": "s", "reasons": []}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registrar() -> Iterator[tuple[int, list[dict]]]:
    handler = type("Handler", (_Registrar,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_dom0_boots_under_xen_to_a_login_prompt_on_hvc0_and_registers(
    dom0_image: Dom0Image,
    dom0_tree: Path,
    tmp_path: Path,
    registrar: tuple[int, list[dict]],
) -> None:
    """As the installer leaves it: fstab by LABEL, an ifupdown stanza, the agent's config.

    QEMU's user-mode network gives dom0 DHCP, and its 10.0.2.2 reaches our loopback registrar.
    """
    port, bodies = registrar
    network = ManagementNetwork(
        AdminInterface(name="eth0"), "eth0", "52:54:00:0d:00:01", NetworkBackend.BRIDGE
    )
    hostconfig.write_network(dom0_tree, network)
    hostconfig.write_network_backend(dom0_tree, network.backend)
    (dom0_tree / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).write_text(
        json.dumps(
            {"server_url": f"http://10.0.2.2:{port}", "token": "tok-boot", "pool": "rack1",
             "hostname": "dom0-boot-test", "mac": "52:54:00:0d:00:01"}
        )
    )  # fmt: skip
    hypervisor, _ = xen.fetch_xen(BuildCache(default_cache_dir()))
    xen_elf = tmp_path / "xen"
    xen_elf.write_bytes(gzip.decompress(hypervisor.path.read_bytes()))
    (dom0_tree / "etc/fstab").write_text(f"LABEL={ROOT_LABEL} / ext3 errors=remount-ro 0 1\n")
    (dom0_tree / "etc/hostname").write_text("dom0-boot-test\n")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as fh:
        fh.truncate(3 << 30)
    run(["mkfs.ext3", "-q", "-F", "-L", ROOT_LABEL, "-d", dom0_tree, disk], timeout=600)
    shutil.copyfile(dom0_image.kernel, tmp_path / "vmlinuz")
    shutil.copyfile(dom0_image.initrd, tmp_path / "initrd.img")
    serial = tmp_path / "serial.log"
    modules = (
        f"{tmp_path / 'vmlinuz'} root=LABEL={ROOT_LABEL} ro console=hvc0,{tmp_path}/initrd.img"
    )
    proc = start(
        [
            "timeout", "--signal=KILL", str(BOOT_TIMEOUT + 30),
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", "2048",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-netdev", "user,id=net0",
            "-device", "e1000,netdev=net0,mac=52:54:00:0d:00:01",
            "-kernel", xen_elf,
            "-append", "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1",
            "-initrd", modules,
            "-drive", f"file={disk},format=raw,if=ide,cache=unsafe",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if "dom0-boot-test login:" in text and bodies:
                break
            time.sleep(2)
    finally:
        stop_vm(proc)
    assert "Xen version 4.17" in text, text[-3000:]
    assert "dom0-boot-test login:" in text, text[-3000:]
    (body,) = bodies
    assert body["auth"] == "Bearer tok-boot"
    assert body["xen_version"].startswith("4.17")
    assert body["dom0_release"] == dom0_image.version
    assert body["management_ip"] == "10.0.2.15"
    assert body["management_interface"] == "xenbr0"
    assert body["network_backend"] == "bridge"
    assert body["mac"] == "52:54:00:0d:00:01"
    assert "eth0" in [nic["name"] for nic in body["nics"]]
    assert body["memory"] >= 1024
    assert body["cpu_vendor"]
