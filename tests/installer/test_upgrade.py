"""Upgrade then restore round trip on a loop disk, and the refusals that protect a host."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

from answerfiles.parse import parse_answerfile
from common import runner
from hypervisor.grub import HostConsole
from installer import install, modes
from installer.block import loop
from installer.discovery import Disk, DiskPartition
from installer.mounts import mounted
from installer.plan import GPT_BASIC_DATA, GPT_BIOS_BOOT, BootMode

pytestmark = pytest.mark.root
GIB = 1 << 30

FRESH = """<?xml version="1.0"?>
<installation>
    <primary-disk>sda</primary-disk>
    <root-password>secret-pw</root-password>
    <source type="url">{url}/r1</source>
    <admin-interface name="eth0" proto="dhcp"/>
    <hostname>keepme.example</hostname>
</installation>
"""
UPGRADE = """<?xml version="1.0"?>
<installation mode="upgrade">
    <existing-installation>sda</existing-installation>
    <source type="url">{url}/r2</source>
</installation>
"""
RESTORE = '<?xml version="1.0"?>\n<restore/>\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseServer]:
    top = tmp_path_factory.mktemp("releases")
    small_release.build(top / "r1", version="1.0")
    small_release.build(top / "r2", version="2.0")
    with ReleaseServer(top) as srv:
        yield srv


def _parse(text: str, url: str):
    return parse_answerfile(text.format(url=url), "t.xml").answers


def _sha(path: str, offset: int, size: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return hashlib.sha256(fh.read(size)).hexdigest()


@pytest.fixture
def installed(server: ReleaseServer, tmp_path: Path) -> Path:
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    install.install(_parse(FRESH, server.url), target=str(image), boot_mode=BootMode.BIOS)
    with loop.attached(image) as device:
        nodes = loop.refresh(device)
        with mounted(nodes[1]) as root:
            (root / "etc/old-only").write_text("from the first install\n")
        with mounted(nodes[5]) as logs:
            (logs / "keep.log").write_text("old logs\n")
        with open(nodes[3], "r+b") as sr:
            sr.write(b"SR-DATA-" * 512)
    return image


def _release(root: Path) -> str:
    return (root / "etc/xcp-provision-release").read_text().strip()


def test_upgrade_then_restore_round_trip(server: ReleaseServer, installed: Path) -> None:
    image = str(installed)
    with loop.attached(image) as device:
        sr_before = _sha(loop.refresh(device)[3], 0, 4096)
        with mounted(loop.refresh(device)[1]) as root:
            uuid_before = (
                (root / "etc/xensource-inventory").read_text().split("INSTALLATION_UUID='")[1][:36]
            )

    modes.upgrade(
        _parse(UPGRADE, server.url),
        target=image,
        boot_mode=BootMode.BIOS,
        host_console=HostConsole.SERIAL,
    )
    with loop.attached(image) as device:
        nodes = loop.refresh(device)
        with mounted(nodes[1]) as root:
            assert _release(root) == "2.0"
            assert "set default=1\n" in (root / "boot/grub/grub.cfg").read_text()  # (Serial)
            assert not (root / "etc/old-only").exists()
            assert (root / "etc/hostname").read_text() == "keepme.example\n"
            inventory = (root / "etc/xensource-inventory").read_text()
            assert f"INSTALLATION_UUID='{uuid_before}'" in inventory
            assert "PRODUCT_VERSION='2.0'" in inventory
            assert (root / "boot/grub/grub.cfg").is_file()
        with mounted(nodes[2]) as backup:
            assert (backup / modes.BACKUP_MARKER).is_file()
            assert _release(backup) == "1.0"
            assert (backup / "etc/old-only").is_file()
        with mounted(nodes[5]) as logs:
            assert (logs / "keep.log").read_text() == "old logs\n"
            assert (logs / "installer/install.log").is_file()
            assert "backup partition" in (logs / "installer/upgrade.log").read_text()
        assert _sha(nodes[3], 0, 4096) == sr_before

    modes.restore(_parse(RESTORE, server.url), target=image, boot_mode=BootMode.BIOS)
    with loop.attached(image) as device:
        nodes = loop.refresh(device)
        with mounted(nodes[1]) as root:
            assert _release(root) == "1.0"
            assert (root / "etc/old-only").is_file()
            assert not (root / modes.BACKUP_MARKER).exists()
        with mounted(nodes[5]) as logs:
            assert (logs / "installer/restore.log").is_file()
        assert _sha(nodes[3], 0, 4096) == sr_before


def _image_sha(image: Path) -> str:
    with open(image, "rb") as fh:
        return hashlib.sha256(fh.read(64 << 20)).hexdigest()


def test_restore_refuses_zero_backups_and_firmware_mismatch(
    server: ReleaseServer, installed: Path
) -> None:
    before = _image_sha(installed)
    with pytest.raises(modes.ModeRefusedError, match="no backup partition"):
        modes.restore(_parse(RESTORE, server.url), target=str(installed), boot_mode=BootMode.BIOS)
    with pytest.raises(modes.ModeRefusedError, match="BIOS firmware but this host boots UEFI"):
        modes.upgrade(_parse(UPGRADE, server.url), target=str(installed), boot_mode=BootMode.UEFI)
    assert _image_sha(installed) == before


def test_restore_refuses_several_backups(server: ReleaseServer, installed: Path) -> None:
    modes.upgrade(_parse(UPGRADE, server.url), target=str(installed), boot_mode=BootMode.BIOS)
    with loop.attached(installed) as device, mounted(loop.refresh(device)[5]) as logs:
        (logs / modes.BACKUP_MARKER).write_text("a second, stray marker\n")
    with pytest.raises(modes.ModeRefusedError, match="2 backup partitions"):
        modes.restore(_parse(RESTORE, server.url), target=str(installed), boot_mode=BootMode.BIOS)
    with pytest.raises(modes.ModeRefusedError, match="BIOS firmware but this host boots UEFI"):
        with loop.attached(installed) as device, mounted(loop.refresh(device)[5]) as logs:
            (logs / modes.BACKUP_MARKER).unlink()
        modes.restore(_parse(RESTORE, server.url), target=str(installed), boot_mode=BootMode.UEFI)


def test_upgrade_finds_the_backup_by_number_on_an_unnamed_xcp_ng_table(
    server: ReleaseServer, installed: Path
) -> None:
    """XCP-ng leaves GPT partition names empty: the backup is the partition after the root."""
    clear_names = [arg for n in range(1, 7) for arg in ("-c", f"{n}:")]
    runner.run(["sgdisk", *clear_names, str(installed)])
    table = runner.run(["sfdisk", "--json", str(installed)]).stdout
    assert '"name"' not in table
    modes.upgrade(_parse(UPGRADE, server.url), target=str(installed), boot_mode=BootMode.BIOS)
    with loop.attached(installed) as device, mounted(loop.refresh(device)[2]) as backup:
        assert (backup / modes.BACKUP_MARKER).is_file()


def test_a_software_raid_member_is_neither_upgraded_nor_restored() -> None:
    """A member's partitions are the mirror's seen through one disk: writing them would change
    that member alone. The root and boot partitions are all there, as on a mirror's member."""
    root = DiskPartition(
        1, "/dev/sda1", 2048, 18 << 30, GPT_BASIC_DATA, "root", "ext3", "root-abcdef"
    )
    boot = DiskPartition(4, "/dev/sda4", 4096, 512 << 20, GPT_BIOS_BOOT, "boot")
    member = Disk(
        "sda",
        "/dev/sda",
        100 << 30,
        partitions=(root, boot),
        table="gpt",
        signatures=("PMBR", "gpt", "linux_raid_member"),
    )
    with pytest.raises(modes.ModeRefusedError, match="/dev/sda is a member of a software RAID"):
        modes.find_installation(member)
    plain = replace(member, signatures=("PMBR", "gpt"))
    assert modes.find_installation(plain).root == root
