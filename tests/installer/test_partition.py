"""``xcp-install partition`` on real loop devices: exact layout, labels, filesystems, wiping.

Each disk is a sparse image file; the installer attaches it itself when given the file, and the
tests read the result back from the image with sfdisk, sgdisk, blkid and mtools, and mount ext3.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.loopdisk import (
    GIB,
    MIB,
    loop_image,
    make_lvm_pv,
    signature_types,
    sparse_image,
    sync,
    write_md_superblock,
    write_zfs_label,
)

from installer.block import loop
from installer.cli.main import main

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
]

ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <primary-disk{attrs}>{disk}</primary-disk>
  {guests}
  <source type="url">http://example.invalid/xcp/</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""


def answerfile(tmp_path: Path, disk: str = "sda", attrs: str = "",
               guests: tuple[str, ...] = ()) -> str:
    path = tmp_path / "answerfile.xml"
    path.write_text(ANSWERFILE.format(
        disk=disk, attrs=attrs, guests="".join(f"<guest-disk>{g}</guest-disk>" for g in guests)))
    return str(path)


def install(*args: str) -> Result:
    return CliRunner().invoke(main, ["partition", *args], catch_exceptions=False)


def table(image: Path | str) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["partitiontable"]


def parts_by_number(image: Path | str) -> dict[int, dict]:
    found = {}
    for part in table(image)["partitions"]:
        number = int(part["node"][len(str(image)):].lstrip("p"))
        found[number] = part
    return found


def blkid(device: str) -> dict[str, str]:
    out = subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True, check=False,
                         text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sgdisk_codes(image: Path) -> dict[int, str]:
    out = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True,
                         check=True).stdout
    codes = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit() and len(fields) >= 6:
            codes[int(fields[0])] = fields[5]
    return codes


def assert_detached(image: Path) -> None:
    out = subprocess.run(["losetup", "--associated", str(image)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == ""


@pytest.fixture
def image(tmp_path: Path):
    path = sparse_image(tmp_path / "disk.img", 60 * GIB)
    yield path
    path.unlink(missing_ok=True)


def test_uefi_layout_with_guest_storage(tmp_path: Path, image: Path):
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "uefi")
    assert result.exit_code == 0, result.output
    assert_detached(image)
    parts = parts_by_number(image)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6]
    assert [n for n, _ in sorted(parts.items(), key=lambda kv: kv[1]["start"])] == [
        5, 2, 1, 4, 6, 3]
    sizes = {n: p["size"] * 512 for n, p in parts.items()}
    assert sizes[1] == sizes[2] == 18 * GIB
    assert (sizes[4], sizes[5], sizes[6]) == (512 * MIB, 4 * GIB, 1 * GIB)
    assert parts[5]["start"] == 2048
    assert all(p["start"] % 2048 == 0 for p in parts.values())
    assert parts[3]["start"] + parts[3]["size"] <= table(image)["lastlba"] + 1
    assert sgdisk_codes(image) == {1: "0700", 2: "0700", 3: "8E00", 4: "EF00", 5: "0700",
                                   6: "8200"}
    with loop.attached(image) as device:
        found = {n: blkid(f"{device}p{n}") for n in range(1, 7)}
        labels = {n: found[n].get("LABEL") for n in found}
        suffix = labels[1].removeprefix("root-")
        assert len(suffix) == 6 and suffix.isalpha() and suffix.islower()
        assert labels == {1: f"root-{suffix}", 2: None, 3: None, 4: f"BOOT-{suffix.upper()}",
                          5: f"logs-{suffix}", 6: f"swap-{suffix}"}
        assert [found[n].get("TYPE") for n in range(1, 7)] == [
            "ext3", None, None, "vfat", "ext3", "swap"]
        mnt = tmp_path / "root"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "ext3", f"{device}p1", str(mnt)], check=True)
        try:
            assert (mnt / "lost+found").is_dir()
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
        esp = subprocess.run(["minfo", "-i", f"{device}p4", "::"], capture_output=True,
                             text=True, check=True).stdout
        assert "BOOT-" in esp
    assert_detached(image)


def test_bios_without_guest_storage(tmp_path: Path, image: Path):
    result = install("--answerfile", answerfile(tmp_path, attrs=' guest-storage="no"'),
                     "--target-disk", str(image), "--boot-mode", "bios")
    assert result.exit_code == 0, result.output
    parts = parts_by_number(image)
    assert sorted(parts) == [1, 2, 3, 5, 6]
    assert [n for n, _ in sorted(parts.items(), key=lambda kv: kv[1]["start"])] == [
        5, 2, 1, 3, 6]
    assert sgdisk_codes(image) == {1: "0700", 2: "0700", 3: "EF02", 5: "0700", 6: "8200"}
    assert parts[3]["size"] * 512 == 512 * MIB
    with loop.attached(image) as device:
        assert "TYPE" not in blkid(f"{device}p3")
        assert blkid(f"{device}p1")["TYPE"] == "ext3"


def test_preserved_utility_partition_keeps_number_one_and_its_content(tmp_path: Path,
                                                                      image: Path):
    with loop.attached(image) as device:
        subprocess.run(["sgdisk", "-n1:2048:+64M", "-t1:0700", "-c1:DELLUTILITY",
                        "-n2:0:+1G", device], check=True, capture_output=True)
        loop.refresh(device)
        subprocess.run(["mkfs.vfat", "-n", "DELLUTILITY", f"{device}p1"], check=True,
                       capture_output=True)
        note = tmp_path / "DELL.TXT"
        note.write_text("vendor diagnostics\n")
        subprocess.run(["mcopy", "-i", f"{device}p1", str(note), "::DELL.TXT"], check=True)
        sync(device)
    before = parts_by_number(image)[1]
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "uefi")
    assert result.exit_code == 0, result.output
    parts = parts_by_number(image)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6, 7]
    assert parts[1] == before
    assert [n for n, _ in sorted(parts.items(), key=lambda kv: kv[1]["start"])] == [
        1, 6, 3, 2, 5, 7, 4]
    assert parts[6]["start"] == 2048 + 64 * 2048
    with loop.attached(image) as device:
        copied = subprocess.run(["mtype", "-i", f"{device}p1", "::DELL.TXT"],
                                capture_output=True, text=True, check=True).stdout
        assert copied == "vendor diagnostics\n"
        assert blkid(f"{device}p2")["LABEL"].startswith("root-")
        assert blkid(f"{device}p5")["LABEL"].startswith("BOOT-")


def test_guest_disks_get_an_empty_gpt(tmp_path: Path, image: Path):
    with loop_image(tmp_path / "guest.img", 8 * GIB) as guest:
        subprocess.run(["sgdisk", "-n1:2048:+1G", guest], check=True, capture_output=True)
        loop.refresh(guest)
        subprocess.run(["mkfs.ext4", "-q", f"{guest}p1"], check=True)
        result = install("--answerfile", answerfile(tmp_path, guests=(guest,)),
                         "--target-disk", str(image), "--boot-mode", "uefi")
        assert result.exit_code == 0, result.output
        sync(guest)
        gpt = table(guest)
        assert gpt["label"] == "gpt" and gpt.get("partitions", []) == []
        assert signature_types(guest) == {"gpt", "PMBR"}
        with open(guest, "rb") as fh:
            fh.seek(MIB + 1024 + 56)
            assert fh.read(2) != b"\x53\xef"  # the old p1's ext4 magic is gone
    assert sorted(parts_by_number(image)) == [1, 2, 3, 4, 5, 6]


def test_stale_md_zfs_and_lvm_signatures_are_gone(tmp_path: Path, image: Path):
    size = image.stat().st_size
    with loop.attached(image) as device:
        write_md_superblock(device)
        write_zfs_label(device, size)
        sync(device)
        assert "linux_raid_member" in signature_types(device)
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "bios")
    assert result.exit_code == 0, result.output
    # A second install over the first, whose partitions now carry an LVM PV (SR), an md
    # member (backup) and ZFS labels (logs): the reused-disk case XCP-ng users hit.
    with loop.attached(image) as device:
        assert signature_types(device) == {"gpt", "PMBR"}
        make_lvm_pv(f"{device}p3")
        write_md_superblock(f"{device}p2")
        write_zfs_label(f"{device}p5", 4 * GIB)
        for node in (f"{device}p3", f"{device}p2"):
            sync(node)
        assert signature_types(f"{device}p3") == {"LVM2_member"}
        assert "linux_raid_member" in signature_types(f"{device}p2")
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "bios")
    assert result.exit_code == 0, result.output
    with loop.attached(image) as device:
        assert signature_types(device) == {"gpt", "PMBR"}
        assert signature_types(f"{device}p3") == set()
        assert signature_types(f"{device}p2") == set()
        assert signature_types(f"{device}p5") == {"ext3"}
        assert blkid(f"{device}p5")["TYPE"] == "ext3"


def test_utility_partition_kept_on_a_disk_that_grew(tmp_path: Path, image: Path):
    """A GPT written for a smaller disk (backup header mid-disk): libparted is told to fix it."""
    os.truncate(image, 50 * GIB)
    subprocess.run(["sgdisk", "-n1:2048:+64M", "-t1:0700", "-c1:DELLUTILITY", str(image)],
                   check=True, capture_output=True)
    before = parts_by_number(image)[1]
    os.truncate(image, 60 * GIB)
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "bios")
    assert result.exit_code == 0, result.output
    parts = parts_by_number(image)
    assert parts[1] == before and sorted(parts) == [1, 2, 3, 4, 5, 6, 7]
    assert parts[4]["start"] + parts[4]["size"] > 50 * GIB // 512
    assert table(image)["lastlba"] == 60 * GIB // 512 - 34


def test_utility_partition_carried_over_from_an_mbr_table(tmp_path: Path, image: Path):
    subprocess.run(["sfdisk", "--quiet", str(image)], input="label: dos\n2048,131072,de\n",
                   text=True, check=True)
    result = install("--answerfile", answerfile(tmp_path), "--target-disk", str(image),
                     "--boot-mode", "uefi")
    assert result.exit_code == 0, result.output
    assert table(image)["label"] == "gpt"
    parts = parts_by_number(image)
    assert (parts[1]["start"], parts[1]["size"], parts[1]["name"]) == (2048, 131072, "utility")
    assert sorted(parts) == [1, 2, 3, 4, 5, 6, 7]


def test_4k_sector_disk(tmp_path: Path, image: Path):
    """A 4Kn disk: the same layout in 4096-byte sectors (1 MiB = 256 sectors)."""
    device = subprocess.run(["losetup", "--find", "--show", "--sector-size", "4096", str(image)],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        result = install("--answerfile", answerfile(tmp_path), "--target-disk", device,
                         "--boot-mode", "uefi")
        assert result.exit_code == 0, result.output
        gpt = table(device)
        assert gpt["sectorsize"] == 4096
        parts = {int(p["node"].rsplit("p", 1)[1]): p for p in gpt["partitions"]}
        assert parts[5]["start"] == 256
        assert parts[1]["size"] * 4096 == 18 * GIB and parts[4]["size"] * 4096 == 512 * MIB
        assert blkid(f"{device}p4")["LABEL"].startswith("BOOT-")
    finally:
        loop.detach(device)
    assert_detached(image)
