"""A whole unattended install onto a 60 GiB sparse loop disk, from a release over real HTTP.

The disk is then attached again and inspected as the firmware and dom0 will see it: the MBR boot
code or the ESP fallback loader, the root with Xen and dom0, grub.cfg, fstab, inventory,
first-boot config, the install log on the logs partition, and the events the server received.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

from answerfiles.model import AdminInterface, AnswerFile
from answerfiles.parse import parse_answerfile
from common import runner
from installer import fetch, install, laydown
from installer.block import loop
from installer.discovery import Nic
from installer.mounts import mounted
from installer.plan import BootMode
from installer.progress import HttpReporter

GIB = 1 << 30

pytestmark = pytest.mark.root

ANSWERS = """<?xml version="1.0"?>
<installation srtype="ext" xmlns:xp="urn:xcp-provision:answerfile:1">
    <primary-disk>sda</primary-disk>
    <keymap>fr</keymap>
    <root-password type="hash">{hash}</root-password>
    <source type="url">{url}/release</source>
    <admin-interface name="eth0" proto="static" vlan="42">
        <ipaddr>192.0.2.10</ipaddr><subnet>255.255.255.0</subnet><gateway>192.0.2.1</gateway>
    </admin-interface>
    <name-server>192.0.2.53</name-server>
    <hostname>rack1-h07.lab.example</hostname>
    <timezone>Europe/Paris</timezone>
    <ntp-server>ntp1.lab.example</ntp-server>
    <script stage="installation-start" type="url">{url}/scripts/record</script>
    <script stage="filesystem-populated" type="url">{url}/scripts/record</script>
    <script stage="installation-complete" type="url">{url}/scripts/record</script>
    <xp:provisioning>
        <xp:server-url>{url}</xp:server-url>
        <xp:token>tok-123</xp:token>
        <xp:pool>rack1</xp:pool>
    </xp:provisioning>
</installation>
"""
HASH = "$6$saltsalt$" + "a" * 86


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReleaseServer, Path]]:
    top = tmp_path_factory.mktemp("served")
    small_release.build(top / "release")
    (top / "scripts").mkdir()
    log = top / "script-calls.log"
    (top / "scripts/record").write_text(
        f'#!/bin/sh\necho "$XS_STAGE $*" >> {log}\n'
        'if [ "$XS_STAGE" = filesystem-populated ]; then touch "$1/populated-marker"; fi\n'
        "exit 3\n"
    )
    with ReleaseServer(top) as srv:
        yield srv, top


def _answers(url: str):
    return parse_answerfile(ANSWERS.format(url=url, hash=HASH), "test.xml").answers


def _image(tmp_path: Path) -> Path:
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    return image


def _partitions(image: Path) -> dict[str, dict]:
    table = json.loads(runner.run(["sfdisk", "--json", image]).stdout)["partitiontable"]
    return {p["name"]: p for p in table["partitions"]}


def _install(served, tmp_path: Path, mode: BootMode):
    srv, _top = served
    image = _image(tmp_path)
    result = install.install(
        _answers(srv.url),
        target=str(image),
        boot_mode=mode,
        reporters=(HttpReporter(srv.url, "tok-123", min_interval=0),),
    )
    return image, result


def _check_root(root: Path, result, mode: BootMode) -> None:
    suffix = result.plan.label_suffix
    boot = root / "boot"
    assert (boot / "xen-4.17.gz").is_file()
    assert (boot / "xen.gz").resolve() == (boot / "xen-4.17.gz").resolve()
    assert (boot / "vmlinuz").is_symlink() and (boot / "initrd.img").is_symlink()
    assert (root / "usr/bin/xcp-dom0-marker").is_file()
    cfg = (boot / "grub/grub.cfg").read_text()
    assert len(re.findall(r"^menuentry ", cfg, re.M)) == 4
    assert cfg.count(f"--set root root-{suffix}") == 4
    assert "multiboot2 /boot/xen-4.17.gz" in cfg
    platform = "x86_64-efi" if mode is BootMode.UEFI else "i386-pc"
    assert (boot / "grub" / platform / "multiboot2.mod").is_file()

    fstab = (root / "etc/fstab").read_text()
    assert f"LABEL=root-{suffix}\t/\text3" in fstab
    assert f"LABEL=logs-{suffix}\t/var/log" in fstab
    assert f"LABEL=swap-{suffix}\tnone\tswap" in fstab
    assert (f"LABEL=BOOT-{suffix.upper()}\t/boot/efi\tvfat" in fstab) == (mode is BootMode.UEFI)

    inventory = (root / "etc/xensource-inventory").read_text()
    for key in ("INSTALLATION_UUID", "CONTROL_DOMAIN_UUID", "PRIMARY_DISK", "BACKUP_PARTITION",
                "DOM0_MEM", "DOM0_VCPUS"):
        assert re.search(rf"^{key}='[^']+'$", inventory, re.M), key
    assert "MANAGEMENT_INTERFACE='xenbr0.42'" in inventory  # the address's VLAN on the bridge
    assert "PARTITION_LAYOUT='ROOT,BACKUP,SR,BOOT,LOG,SWAP'" in inventory
    assert f"INSTALLATION_UUID='{result.identity.installation_uuid}'" in inventory

    assert (root / "etc/hostname").read_text() == "rack1-h07.lab.example\n"
    net = (root / "etc/network/interfaces.d/management").read_text()
    assert "iface xenbr0 inet manual\n\tovs_type OVSBridge\n\tovs_ports eth0\n" in net
    assert "iface xenbr0.42 inet static" in net
    assert "address 192.0.2.10\n\tnetmask 255.255.255.0" in net
    assert "vlan-raw-device xenbr0" in net and "gateway 192.0.2.1" in net
    resolv = (root / "etc/resolv.conf").read_text()
    assert "nameserver 192.0.2.53" in resolv and "search lab.example" in resolv
    assert (root / "etc/shadow").read_text().startswith(f"root:{HASH}:")
    assert "daemon:*:" in (root / "etc/shadow").read_text()
    assert re.fullmatch(r"[0-9a-f]{32}\n", (root / "etc/machine-id").read_text())
    assert (root / "etc/timezone").read_text() == "Europe/Paris\n"
    assert 'XKBLAYOUT="fr"' in (root / "etc/default/keyboard").read_text()
    assert "NTP=ntp1.lab.example" in (
        root / "etc/systemd/timesyncd.conf.d/xcp-provision.conf").read_text()
    firstboot = root / "etc/xcp-provision/firstboot.json"
    assert firstboot.stat().st_mode & 0o777 == 0o600
    config = json.loads(firstboot.read_text())
    assert config["token"] == "tok-123" and config["pool"] == "rack1"
    assert config["hostname"] == "rack1-h07.lab.example"
    assert config["server_url"].startswith("http://127.0.0.1:")
    assert (root / "populated-marker").is_file()


def _check_logs(logs: Path) -> None:
    text = (logs / "installer/install.log").read_text()
    assert "plan:" in text
    assert "filesystem-populated script" in text and "exited with 3" in text


def _check_events(srv: ReleaseServer, since: int) -> None:
    posts = [p for p in srv.posts[since:] if p.path.startswith("/api/v1/installs/")]
    assert {p.authorization for p in posts} == {"Bearer tok-123"}
    events = [p.body for p in posts if p.path.endswith("/events")]
    steps = [e["step"] for e in events]
    for step in ("prepare", "partition", "laydown", "bootloader"):
        assert step in steps
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents)
    assert posts[-1].path == "/api/v1/installs/done"


def test_bios_install(served, tmp_path: Path) -> None:
    srv, top = served
    since = len(srv.posts)
    image, result = _install(served, tmp_path, BootMode.BIOS)
    parts = _partitions(image)
    assert set(parts) == {"root", "backup", "sr", "boot", "logs", "swap"}
    with open(image, "rb") as fh:
        sector0 = fh.read(512)
    boot_img = Path("/usr/lib/grub/i386-pc/boot.img").read_bytes()
    assert sector0[0x66:0x68] == b"\x90\x90"
    assert sector0[0x68:0x1B8] == boot_img[0x68:0x1B8]
    assert sector0[0x1FE:] == b"\x55\xaa"
    assert sector0[0x1C2] == 0xEE
    bios_boot_start = parts["boot"]["start"]
    assert struct.unpack_from("<Q", sector0, 0x5C)[0] == bios_boot_start
    with open(image, "rb") as fh:
        fh.seek(bios_boot_start * 512)
        first = fh.read(512)
    assert struct.unpack_from("<Q", first, 500)[0] == bios_boot_start + 1
    runner.run(["sgdisk", "--verify", image])

    with loop.attached(image) as device:
        nodes = loop.refresh(device)
        with mounted(nodes[1]) as root:
            _check_root(root, result, BootMode.BIOS)
        with mounted(nodes[5]) as logs:
            _check_logs(logs)
    calls = (top / "script-calls.log").read_text().splitlines()
    assert calls[0] == "installation-start "
    assert re.fullmatch(r"filesystem-populated /\S+", calls[1])
    assert calls[2] == "installation-complete 0"
    _check_events(srv, since)


def test_uefi_install_survives_a_cut_download(served, tmp_path: Path) -> None:
    srv, top = served
    since = len(srv.posts)
    rootfs = next((top / "release").glob("dom0-rootfs*"))
    srv.cut_once(f"/release/{rootfs.name}", rootfs.stat().st_size // 2)
    image, result = _install(served, tmp_path, BootMode.UEFI)
    resumed = [g for g in srv.gets if g.path == f"/release/{rootfs.name}" and g.status == 206]
    assert resumed and resumed[-1].range == f"bytes={rootfs.stat().st_size // 2}-"
    suffix = result.plan.label_suffix
    with loop.attached(image) as device:
        nodes = loop.refresh(device)
        esp = nodes[4]
        assert runner.run(["blkid", "-p", "-o", "value", "-s", "LABEL", esp]).stdout.strip() == (
            f"BOOT-{suffix.upper()}")
        listing = runner.run(["mdir", "-i", esp, "-b", "::/EFI/BOOT"],
                             env={"MTOOLS_SKIP_CHECK": "1"}).stdout
        assert "BOOTX64.EFI" in listing
        loader = tmp_path / "BOOTX64.EFI"
        runner.run(["mcopy", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI", loader],
                   env={"MTOOLS_SKIP_CHECK": "1"})
        with mounted(nodes[1]) as root:
            _check_root(root, result, BootMode.UEFI)
    raw = loader.read_bytes()
    pe_offset = struct.unpack_from("<I", raw, 0x3C)[0]
    assert raw[:2] == b"MZ" and raw[pe_offset : pe_offset + 4] == b"PE\0\0"
    assert struct.unpack_from("<H", raw, pe_offset + 4)[0] == 0x8664
    _check_events(srv, since)


def test_corrupt_image_fails_before_the_bootloader(served, tmp_path: Path) -> None:
    srv, top = served
    bad = top / "corrupt"
    bad.mkdir(exist_ok=True)
    for f in (top / "release").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    xen = next(bad.glob("xen-*.gz"))
    data = bytearray(xen.read_bytes())
    data[len(data) // 2] ^= 0x01
    xen.write_bytes(bytes(data))
    answers = parse_answerfile(
        ANSWERS.format(url=srv.url, hash=HASH).replace("/release<", "/corrupt<"), "t.xml"
    ).answers
    image = _image(tmp_path)
    with pytest.raises(fetch.ChecksumError) as err:
        install.install(answers, target=str(image), boot_mode=BootMode.BIOS,
                        reporters=(HttpReporter(srv.url, "tok-123", min_interval=0),))
    assert "corrupt" in str(err.value) and xen.name in str(err.value)
    with open(image, "rb") as fh:
        sector0 = fh.read(512)
    assert sector0[0x66:0x68] != b"\x90\x90"
    with loop.attached(image) as device, mounted(loop.refresh(device)[1]) as root:
        assert not (root / "boot/grub/grub.cfg").exists()
    posts = srv.posts
    assert posts[-1].path == "/api/v1/installs/failed"
    assert "corrupt" in posts[-1].body["reason"]
    assert "plan:" in posts[-1].body["log"]
    assert "installation-complete script" in posts[-1].body["log"]
    calls = (top / "script-calls.log").read_text().splitlines()
    assert calls[-1] == "installation-complete 1"
    assert calls[-2] == "installation-start "


def test_laydown_keeps_versioned_files_behind_stable_names(tmp_path: Path) -> None:
    """A release naming its hypervisor plainly ``xen.gz`` still gets a versioned file."""
    rel = tmp_path / "rel"
    small_release.build(rel)
    (rel / "xen-4.17.gz").rename(rel / "xen.gz")
    (rel / "vmlinuz-6.1.0-test-amd64").rename(rel / "dom0-vmlinuz")
    text = (rel / "manifest.json").read_text()
    text = text.replace('"xen-4.17.gz"', '"xen.gz"').replace(
        '"vmlinuz-6.1.0-test-amd64"', '"dom0-vmlinuz"')
    (rel / "manifest.json").write_text(text)
    root = tmp_path / "root"
    root.mkdir()
    laid = laydown.lay_down(str(rel), fetch.fetch_manifest(str(rel)), root)
    boot = root / "boot"
    assert (boot / "xen.gz").is_symlink() and (boot / "xen-4.17.gz").is_file()
    assert (boot / "xen.gz").read_bytes() == (rel / "xen.gz").read_bytes()
    assert (boot / "vmlinuz").resolve() == boot / "vmlinuz-6.1.0-test-amd64"
    assert laid.fallback.xen == "/boot/xen-4.17.gz"
    assert (root / "etc/shadow").stat().st_mode & 0o777 == 0o640


def test_the_installers_own_disk_is_refused(served, tmp_path: Path) -> None:
    srv, _top = served
    image = _image(tmp_path)
    with loop.attached(image) as device, pytest.raises(install.RefusedError) as err:
        install.install(_answers(srv.url), target=device, boot_mode=BootMode.BIOS,
                        installer_disk=device)
    assert "installer is running from" in str(err.value)
    with open(image, "rb") as fh:
        assert fh.read(1 << 20) == bytes(1 << 20)


def test_management_nic_by_name_or_mac() -> None:
    nics = (Nic("eno1", "52:54:00:00:00:01", "e1000", True, 1000),
            Nic("eno2", "52:54:00:00:00:02", "e1000", False, None))
    by_mac = AnswerFile(admin_interface=AdminInterface(hwaddr="52:54:00:00:00:02"))
    assert install.management_nic(by_mac, nics) == ("eno2", "52:54:00:00:00:02")
    by_name = AnswerFile(admin_interface=AdminInterface(name="eno1"))
    assert install.management_nic(by_name, nics) == ("eno1", "52:54:00:00:00:01")
    absent = AnswerFile(admin_interface=AdminInterface(hwaddr="52:54:00:00:00:99"))
    with pytest.raises(install.RefusedError, match="no network interface has MAC"):
        install.management_nic(absent, nics)


def test_an_image_target_never_reaches_the_answers_guest_disks(served, tmp_path: Path) -> None:
    srv, _top = served
    xml = ANSWERS.format(url=srv.url, hash=HASH).replace(
        "<primary-disk>sda</primary-disk>",
        "<primary-disk>sda</primary-disk><guest-disk>sdzz</guest-disk>")
    answers = parse_answerfile(xml, "guests.xml").answers
    assert answers.guest_disks == ("sdzz",)
    result = install.install(answers, target=str(_image(tmp_path)), boot_mode=BootMode.BIOS)
    assert result.plan.guest_disks == ()


def test_a_refused_install_runs_no_writing_command(served, tmp_path: Path) -> None:
    """A release that cannot be read is found before any disk command that writes."""
    srv, _top = served
    xml = ANSWERS.format(url=srv.url, hash=HASH).replace("/release<", "/no-such-release<")
    seen: list[list[str]] = []
    with runner.guarded(seen.append), pytest.raises(install.RefusedError, match="no release"):
        install.install(parse_answerfile(xml, "t.xml").answers,
                        target=str(_image(tmp_path)), boot_mode=BootMode.BIOS)
    writers = {"mkfs.ext3", "mkfs.vfat", "mkswap", "sgdisk", "dd", "mount", "grub-mkimage",
               "mcopy", "tar"}
    ran = [argv[0] for argv in seen]
    assert "losetup" in ran and "wipefs" in ran  # wipefs --json only lists signatures
    assert not writers & set(ran), ran
    assert not any(argv[0] == "wipefs" and "--all" in argv for argv in seen)
    assert not any(argv[:2] == ["partx", "--add"] for argv in seen)
