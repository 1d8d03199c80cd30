"""Host configuration files, written into a directory standing in for the target root."""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Ntp,
    NtpSource,
    Provisioning,
    Service,
    ServiceState,
    SrType,
)
from common import dom0_layout, registration_key
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


def test_configure_writes_every_file(root: Path) -> None:
    answers = AnswerFile(
        admin_interface=AdminInterface(hwaddr="52:54:00:AA:BB:CC"),
        hostname="h1.example.org", name_servers=("9.9.9.9",), timezone="America/New_York",
        keymap="de-nodeadkeys", ntp=Ntp(NtpSource.NONE),
        services=(Service("sshd", ServiceState.ENABLED),),
        provisioning=Provisioning(server_url="https://prov.example", token="t0k", pool="p1"),
    )  # fmt: skip
    identity = hostconfig.Identity.new()
    key_sha256 = hostconfig.configure(root, answers, LABELS, FACTS, identity)
    assert (root / "etc/shadow").read_text().startswith("root:!:")
    assert (root / "etc/xensource/network.conf").read_text() == "openvswitch\n"
    # The default backend: eno1 on the Open vSwitch bridge xenbr0, which holds the address.
    management = inside(root, dom0_layout.MANAGEMENT_INTERFACE_FILE).read_text()
    assert "iface xenbr0 inet dhcp\n\tovs_type OVSBridge\n\tovs_ports eno1\n" in management
    assert "iface eno1 inet manual\n\tovs_bridge xenbr0\n" in management
    assert 'other-config:hwaddr=\\"52:54:00:aa:bb:cc\\"' in management
    xl_conf = (root / "etc/xen/xl.conf").read_text().splitlines()
    assert 'vif.default.script="vif-openvswitch"' in xl_conf
    assert 'vif.default.bridge="xenbr0"' in xl_conf
    assert "bin:*:" in (root / "etc/shadow").read_text()
    assert (root / "etc/systemd/system/systemd-timesyncd.service").readlink() == Path("/dev/null")
    assert (root / "etc/systemd/system/multi-user.target.wants/ssh.service").is_symlink()
    assert (
        "MACAddress=52:54:00:aa:bb:cc\n\n[Link]\nName=eno1"
        in (root / "etc/systemd/network/10-xcp-management.link").read_text()
    )
    assert 'XKBVARIANT="nodeadkeys"' in (root / "etc/default/keyboard").read_text()
    assert (root / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/America/New_York")
    inventory = hostconfig.read_inventory(root)
    assert inventory["INSTALLATION_UUID"] == identity.installation_uuid
    assert inventory["CONTROL_DOMAIN_UUID"] == identity.control_domain_uuid
    assert inventory["PRIMARY_DISK"] == "/dev/disk/by-id/ata-TEST"
    assert inventory["BACKUP_PARTITION"] == "/dev/sda2"
    assert inventory["DOM0_MEM"] == "1232" and inventory["DOM0_VCPUS"] == "4"
    assert inventory["MANAGEMENT_INTERFACE"] == "xenbr0"  # as XCP-ng records it
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
    brief = inside(root, dom0_layout.FIRSTBOOT_CONFIG)
    assert stat.S_IMODE(brief.stat().st_mode) == 0o600  # the token and the key: root only
    firstboot = json.loads(brief.read_text())
    # A fresh random key, of which build-done sends only the hash.
    key = firstboot.pop(registration_key.FIELD)
    assert len(key) == 43 and key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert firstboot == {
        "server_url": "https://prov.example",
        "token": "t0k",
        "pool": "p1",
        "hostname": "h1.example.org",
        "mac": "52:54:00:aa:bb:cc",
    }


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
        sr_type, ("/dev/disk/by-id/ata-TEST-part3", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4")
    )
    hostconfig.configure(
        root, AnswerFile(), LABELS, replace(FACTS, local_storage=storage), hostconfig.Identity.new()
    )
    devices = "/dev/disk/by-id/ata-TEST-part3 /dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert (root / "etc/firstboot.d/data/default-storage.conf").read_text().splitlines() == [
        f"XSPARTITIONS='{devices}'",
        f"XSTYPE='{sr_type}'",
        f"PARTITIONS='{devices}'",
        f"TYPE='{sr_type}'",
    ]


def test_no_sr_asked_leaves_no_storage_request(root: Path) -> None:
    hostconfig.configure(root, AnswerFile(), LABELS, FACTS, hostconfig.Identity.new())
    assert not (root / "etc/firstboot.d").exists()


def test_every_install_leaves_a_new_registration_key(tmp_path: Path) -> None:
    answers = AnswerFile(provisioning=Provisioning(server_url="http://prov", token="t"))
    digests = {hostconfig.write_firstboot(tmp_path / str(n), answers, None) for n in range(2)}
    assert len(digests) == 2 and all(registration_key.is_digest(d) for d in digests)
