"""Host configuration files, written into a directory standing in for the target root."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Ntp,
    NtpSource,
    Proto,
    ProtoV6,
    Provisioning,
    Service,
    ServiceState,
    SrType,
)
from common import dom0_layout
from common.dom0_layout import inside
from installer import hostconfig

LABELS = hostconfig.Labels("root-abcdef", "logs-abcdef", "swap-abcdef", "BOOT-ABCDEF")
FACTS = hostconfig.HostFacts(
    primary_disk="/dev/disk/by-id/ata-TEST", backup_partition="/dev/sda2",
    partition_layout=("ROOT", "BACKUP", "SR", "BOOT", "LOG", "SWAP"), dom0_mem_mib=1232,
    dom0_vcpus=4, xen_version="4.17", kernel_version="6.1", product_version="0.1.0",
    management_interface="eno1", management_mac="52:54:00:aa:bb:cc", uefi=True,
)  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/shadow").write_text("root:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n")
    return tmp_path


def test_static_ipv4_on_a_vlan_with_static_ipv6() -> None:
    admin = AdminInterface(name="eno1", proto=Proto.STATIC, protov6=ProtoV6.STATIC, vlan=7,
                           ipaddr="10.1.2.3", subnet="255.255.252.0", gateway="10.1.0.1",
                           ipv6="2001:db8::5/64", gatewayv6="2001:db8::1")
    text = hostconfig.interfaces_stanza(admin, "eno1")
    assert "auto eno1.7\n" in text
    assert "iface eno1.7 inet static\n\taddress 10.1.2.3\n\tnetmask 255.255.252.0\n" in text
    assert "\tgateway 10.1.0.1\n" in text
    assert "iface eno1.7 inet6 static\n\taddress 2001:db8::5\n\tnetmask 64\n" in text
    assert "\tgateway 2001:db8::1\n" in text
    assert text.count("vlan-raw-device eno1") == 2


@pytest.mark.parametrize(
    ("proto", "protov6", "expected"),
    [
        (Proto.DHCP, ProtoV6.NONE, ["iface eth0 inet dhcp"]),
        (Proto.NONE, ProtoV6.AUTOCONF, ["iface eth0 inet6 auto"]),
        (Proto.DHCP, ProtoV6.DHCP, ["iface eth0 inet dhcp", "iface eth0 inet6 dhcp"]),
    ],
)
def test_dhcp_and_ipv6_methods(proto: Proto, protov6: ProtoV6, expected: list[str]) -> None:
    text = hostconfig.interfaces_stanza(AdminInterface(name="eth0", proto=proto,
                                                       protov6=protov6), "eth0")
    assert [line for line in text.splitlines() if line.startswith("iface")] == expected
    assert "vlan-raw-device" not in text


def test_ifupdown_accepts_the_stanza(tmp_path: Path) -> None:
    """busybox's ifup in dry-run mode parses the file and prints the commands it would run."""
    admin = AdminInterface(name="eth0", proto=Proto.STATIC, protov6=ProtoV6.STATIC, vlan=42,
                           ipaddr="192.0.2.9", subnet="255.255.255.0", gateway="192.0.2.1",
                           ipv6="2001:db8::9/64", gatewayv6="2001:db8::1")
    interfaces = tmp_path / "interfaces"
    interfaces.write_text(hostconfig.interfaces_stanza(admin, "eth0"))
    ifup = subprocess.run(["busybox", "ifup", "-n", "-v", "-f", "-i", str(interfaces), "eth0.42"],
                          capture_output=True, text=True, check=False)
    assert ifup.returncode == 0, ifup.stderr
    assert "ip addr add 192.0.2.9/24 dev eth0.42" in ifup.stdout
    assert "ip route add default via 192.0.2.1 dev eth0.42" in ifup.stdout
    assert "2001:db8::9/64" in ifup.stdout


def test_configure_writes_every_file(root: Path) -> None:
    answers = AnswerFile(
        admin_interface=AdminInterface(hwaddr="52:54:00:AA:BB:CC"),
        hostname="h1.example.org", name_servers=("9.9.9.9",), timezone="America/New_York",
        keymap="de-nodeadkeys", ntp=Ntp(NtpSource.NONE),
        services=(Service("sshd", ServiceState.ENABLED),),
        provisioning=Provisioning(server_url="https://prov.example", token="t0k", pool="p1"),
    )  # fmt: skip
    identity = hostconfig.Identity.new()
    hostconfig.configure(root, answers, LABELS, FACTS, identity)
    assert (root / "etc/shadow").read_text().startswith("root:!:")
    assert (root / "etc/xensource/network.conf").read_text() == "openvswitch\n"
    assert "bin:*:" in (root / "etc/shadow").read_text()
    assert (root / "etc/systemd/system/systemd-timesyncd.service").readlink() == Path("/dev/null")
    assert (root / "etc/systemd/system/multi-user.target.wants/ssh.service").is_symlink()
    assert "MACAddress=52:54:00:aa:bb:cc\n\n[Link]\nName=eno1" in (
        root / "etc/systemd/network/10-xcp-management.link").read_text()
    assert 'XKBVARIANT="nodeadkeys"' in (root / "etc/default/keyboard").read_text()
    assert (root / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/America/New_York")
    inventory = hostconfig.read_inventory(root)
    assert inventory["INSTALLATION_UUID"] == identity.installation_uuid
    assert inventory["CONTROL_DOMAIN_UUID"] == identity.control_domain_uuid
    assert inventory["PRIMARY_DISK"] == "/dev/disk/by-id/ata-TEST"
    assert inventory["BACKUP_PARTITION"] == "/dev/sda2"
    assert inventory["DOM0_MEM"] == "1232" and inventory["DOM0_VCPUS"] == "4"
    assert inventory["MANAGEMENT_INTERFACE"] == "eno1"
    assert inventory["PARTITION_LAYOUT"] == "ROOT,BACKUP,SR,BOOT,LOG,SWAP"
    fstab = (root / "etc/fstab").read_text().splitlines()
    assert [line.split("\t")[:3] for line in fstab[1:]] == [
        ["LABEL=root-abcdef", "/", "ext3"],
        ["LABEL=logs-abcdef", "/var/log", "ext3"],
        ["LABEL=swap-abcdef", "none", "swap"],
        ["LABEL=BOOT-ABCDEF", "/boot/efi", "vfat"],
    ]
    options = {line.split("\t")[1]: line.split("\t")[3].split(",") for line in fstab[1:]}
    # A slow disk must not stop dom0 at an emergency shell, and a missing swap not at all.
    assert "x-systemd.device-timeout=300s" in options["/var/log"]
    assert {"nofail", "x-systemd.device-timeout=300s"} <= set(options["none"])
    firstboot = json.loads(inside(root, dom0_layout.FIRSTBOOT_CONFIG).read_text())
    assert firstboot == {"server_url": "https://prov.example", "token": "t0k", "pool": "p1",
                         "hostname": "h1.example.org", "mac": "52:54:00:aa:bb:cc"}


def test_ntp_from_dhcp_keeps_a_fallback(root: Path) -> None:
    hostconfig.write_ntp(root, NtpSource.DHCP, ())
    text = (root / "etc/systemd/timesyncd.conf.d/xcp-provision.conf").read_text()
    assert "FallbackNTP=0.debian.pool.ntp.org" in text and "\nNTP=" not in text


def test_unwritable_root_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "etc").write_text("a file where a directory should be")
    with pytest.raises(hostconfig.HostConfigError, match="cannot write the host configuration"):
        hostconfig.configure(tmp_path, AnswerFile(), LABELS, FACTS, hostconfig.Identity.new())


@pytest.mark.parametrize("sr_type", list(SrType))
def test_the_local_sr_is_left_for_the_first_boot_as_xcpng_leaves_it(root: Path, sr_type) -> None:
    storage = hostconfig.LocalStorage(
        sr_type, ("/dev/disk/by-id/ata-TEST-part3", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"))
    hostconfig.configure(root, AnswerFile(), LABELS, replace(FACTS, local_storage=storage),
                         hostconfig.Identity.new())
    devices = "/dev/disk/by-id/ata-TEST-part3 /dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert (root / "etc/firstboot.d/data/default-storage.conf").read_text().splitlines() == [
        f"XSPARTITIONS='{devices}'", f"XSTYPE='{sr_type}'",
        f"PARTITIONS='{devices}'", f"TYPE='{sr_type}'"]


def test_no_sr_asked_leaves_no_storage_request(root: Path) -> None:
    hostconfig.configure(root, AnswerFile(), LABELS, FACTS, hostconfig.Identity.new())
    assert not (root / "etc/firstboot.d").exists()
