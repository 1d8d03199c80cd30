"""Reused disks, for real: the installer in its own boot image wipes stale md, LVM and ZFS
metadata from the disks its plan names, and from no other.

This machine's kernel has no md, does not scan GPTs and cannot mount vfat, so the test boots the
installer image under QEMU (``tests/support/installer_vm.py``) with three disks that lived a
life before: a GPT whose partition 1 was an md member (metadata 1.2, 4 KiB in), partition 2 an
LVM physical volume and partition 3, up to the end of the disk, a ZFS vdev; and over the whole
disk an md 0.90 superblock near its end. The LVM label comes from the host's ``pvcreate``
(device-mapper is not needed for a label), the md superblocks from the image's own ``mdadm
--create`` inside the VM (the image leaves out mdadm's udev rule that would assemble them again).
No tool without ZFS's kernel module writes a ZFS label, so its uberblocks are written byte by
byte, as libblkid reads them.

One boot does it all (TCG time is CI time): make the md members, read every disk, install
(UEFI layout) onto ``vda`` with ``vdb`` as guest storage, read every disk again, then check what
only a full kernel shows: the GPT parsed by the kernel itself, udev's by-id links as discovery
reports them, and the ESP mounted as vfat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release, stale_probe
from support.installer_vm import WORKDIR, VmResult, disk_serial, run_in_installer_vm
from support.loopdisk import GIB, MIB, make_lvm_pv, sparse_image, sync, write_zfs_label

from common.runner import run
from installer.block import loop

pytestmark = [pytest.mark.root, pytest.mark.slow]

STALE_TYPES = {"linux_raid_member", "LVM2_member", "zfs_member", "ambivalent"}
# kernel name -> (file name, size); vda and vdb are named by the plan, vdc is not.
DISKS = {
    "vda": ("primary.img", 60 * GIB),
    "vdb": ("guest.img", 1 * GIB),
    "vdc": ("bystander.img", 256 * MIB),
}
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <primary-disk>vda</primary-disk>
  <guest-disk>vdb</guest-disk>
  <source type="url">file://WORKDIR/release</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
""".replace("WORKDIR", WORKDIR)
SCRIPT = r"""
# The old arrays: degraded mirrors, so nothing resyncs. Creating the 0.90 array over a whole
# disk makes the kernel drop that disk's partitions; a re-read brings them back, as at boot.
n=100
for disk in vda vdb vdc; do
    mdadm --create /dev/md$n --run --metadata=1.2 --level=1 --raid-devices=2 \
        /dev/${disk}1 missing && mdadm --stop /dev/md$n || exit 10
    n=$((n + 1))
    mdadm --create /dev/md$n --run --metadata=0.90 --level=1 --raid-devices=2 \
        /dev/$disk missing && mdadm --stop /dev/md$n || exit 11
    n=$((n + 1))
done
udevadm settle
for disk in vda vdb vdc; do
    blockdev --rereadpt /dev/$disk || exit 12
done
udevadm settle
python3 stale_probe.py before "$(cat extents.json)" || exit 13
echo "@@sha256 before $(sha256sum < /dev/vdc | cut -d' ' -f1)"

xcp-install --answerfile answerfile.xml --boot-mode uefi --json-events
echo "@@install $?"

python3 stale_probe.py after "$(cat extents.json)" || exit 14
echo "@@sha256 after $(sha256sum < /dev/vdc | cut -d' ' -f1)"
# What mdadm --assemble --scan at the host's next boot would find, on every partition.
echo "@@md-scan $(mdadm --examine --scan --verbose 2>&1 | tr '\n' ' ')"

# The kernel parses the new GPT itself: forget every partition, then ask it to read the table.
python3 -c 'from installer.block import nodes; nodes.forget_partitions("/dev/vda")'
echo "@@parts-forgotten $(ls /sys/block/vda | grep -c '^vda')"
blockdev --rereadpt /dev/vda
udevadm settle
python3 - <<'EOF'
import json, pathlib, subprocess
from installer.discovery import discover
sysfs = {p.name: [int((p / "start").read_text()), int((p / "size").read_text())]
         for p in sorted(pathlib.Path("/sys/block/vda").glob("vda*"))}
table = json.loads(subprocess.run(["sfdisk", "--json", "/dev/vda"], capture_output=True,
                                  text=True, check=True).stdout)["partitiontable"]
on_disk = {p["node"].rsplit("/", 1)[1]: [p["start"], p["size"]] for p in table["partitions"]}
print("@@kernel-gpt", json.dumps({"sysfs": sysfs, "table": on_disk}))
disks = {d.name: {"by_id": list(d.by_id), "serial": d.serial} for d in discover().disks}
print("@@discovery", json.dumps(disks))
EOF
echo "@@by-id $(ls /dev/disk/by-id | tr '\n' ' ')"

for part in /dev/vda[0-9]*; do
    if [ "$(blkid -p -s PART_ENTRY_TYPE -o value "$part")" = "ESP_TYPE" ]; then
        mkdir -p /tmp/esp && mount -t vfat -o ro "$part" /tmp/esp || exit 15
        echo "@@esp-mount $(grep " /tmp/esp " /proc/mounts)"
        (cd /tmp/esp && find . -type f | sed 's/^/@@esp-file /')
        umount /tmp/esp
    fi
done
""".replace("ESP_TYPE", ESP_TYPE)


def _stale_disk(path: Path, size: int) -> dict[str, object]:
    """A disk's earlier life, as far as the host can write it; returns where it all lies."""
    sparse_image(path, size)
    run(["sgdisk", "-n1:2048:+32M", "-t1:fd00", "-n2:0:+32M", "-t2:8e00", "-n3:0:0",
         "-t3:bf01", path])  # fmt: skip
    table = json.loads(run(["sfdisk", "--json", path]).stdout)["partitiontable"]
    (md_start, md_size), (pv_start, pv_size), (zfs_start, zfs_size) = (
        (p["start"] * 512, p["size"] * 512) for p in table["partitions"]
    )
    write_zfs_label(str(path), zfs_size, offset=zfs_start)
    with loop.attached(path) as device:
        make_lvm_pv(f"{device}p2")
        sync(f"{device}p2")
    return {
        "md090": True,
        "md12": [[md_start, md_size]],
        "lvm": [[pv_start, pv_size]],
        "zfs": [[zfs_start, zfs_size]],
    }


def _lines(output: str, tag: str) -> list[str]:
    prefix = f"@@{tag} "
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]


def _probe(output: str, tag: str) -> dict[str, dict]:
    [found] = [line.split(" ", 1)[1] for line in _lines(output, "probe") if line.startswith(tag)]
    return json.loads(found)


def _clean(found: dict) -> list[str]:
    """Every stale thing ``stale_probe`` still reports on one disk, or nothing."""
    left = [f"{key}={value}" for key, value in found.items() if key.startswith("blkid@")
            and value in STALE_TYPES]  # fmt: skip
    left += [key for key, value in found.items() if key.split("@")[0] in ("md090", "md12", "lvm")
             and value]  # fmt: skip
    left += [f"{key}={value}" for key, value in found.items() if key.startswith("zfs@") and value]
    for where, types in [("disk", found["wipefs"]), *found["partitions"].items()]:
        left += [f"{where}:{t}" for t in types if t in STALE_TYPES]
    return left


@pytest.fixture(scope="module")
def vm(installer_image, tmp_path_factory) -> Iterator[tuple[VmResult, dict[str, dict]]]:
    work = tmp_path_factory.mktemp("stale")
    extents = {f"/dev/{name}": _stale_disk(work / file, size)
               for name, (file, size) in DISKS.items()}  # fmt: skip
    small_release.build(work / "release")
    files = {
        "stale_probe.py": Path(stale_probe.__file__),
        "release": work / "release",
        "answerfile.xml": ANSWERFILE,
        "extents.json": json.dumps(extents),
    }
    disks = [work / file for file, _ in DISKS.values()]
    try:
        result = run_in_installer_vm(installer_image, disks, SCRIPT, timeout=600, files=files)
        yield result, extents
    finally:
        for disk in disks:
            disk.unlink(missing_ok=True)


def test_the_install_succeeds(vm) -> None:
    result, _ = vm
    assert result.exit_code == 0, result.console[-6000:]
    assert _lines(result.output, "install") == ["0"], result.output[-6000:]


def test_the_disks_carried_every_kind_of_stale_metadata_before(vm) -> None:
    """Without this, a clean disk afterwards would prove nothing."""
    result, extents = vm
    before = _probe(result.output, "before")
    assert sorted(before) == sorted(extents)
    for disk, found in before.items():
        name = disk.removeprefix("/dev/")
        [[md, _]], [[pv, _]], [[zfs, _]] = (extents[disk][k] for k in ("md12", "lvm", "zfs"))
        assert found["md090"] and found[f"md12@{md}"] and found[f"lvm@{pv}"], found
        assert found[f"zfs@{zfs}"] == 16, found
        assert "linux_raid_member" in found["wipefs"], found
        assert found[f"blkid@{md}"] == "linux_raid_member", found
        assert found[f"blkid@{pv}"] == "LVM2_member", found
        assert found[f"blkid@{zfs}"] == "zfs_member", found
        assert found["partitions"][f"{name}1"] == ["linux_raid_member"], found
        assert found["partitions"][f"{name}2"] == ["LVM2_member"], found
        assert set(found["partitions"][f"{name}3"]) == {"zfs_member"}, found


@pytest.mark.parametrize("disk", ["/dev/vda", "/dev/vdb"])
def test_no_stale_metadata_survives_on_the_planned_disks(vm, disk: str) -> None:
    result, _ = vm
    after = _probe(result.output, "after")[disk]
    assert _clean(after) == [], after
    assert after["wipefs"] == ["PMBR", "gpt", "gpt"]
    [scan] = _lines(result.output, "md-scan")
    assert disk not in scan, f"mdadm still finds an array member on {disk}: {scan}"


def test_the_planned_disks_files_read_clean_from_the_host(vm) -> None:
    """The same reading, from the disk files QEMU leaves behind, by the host's libblkid."""
    result, extents = vm
    for disk, path in zip(("/dev/vda", "/dev/vdb"), result.disks[:2], strict=True):
        found = stale_probe.probe(str(path), extents[disk])
        assert _clean(found) == [], (disk, found)
    guest = json.loads(run(["sfdisk", "--json", result.disks[1]]).stdout)["partitiontable"]
    assert guest["label"] == "gpt" and guest.get("partitions", []) == []


def test_the_disk_the_plan_does_not_name_is_untouched(vm) -> None:
    result, _ = vm
    before, after = _probe(result.output, "before"), _probe(result.output, "after")
    assert after["/dev/vdc"] == before["/dev/vdc"]
    [hash_before], [hash_after] = (
        _lines(result.output, "sha256 before"),
        _lines(result.output, "sha256 after"),
    )
    assert hash_before == hash_after
    with open(result.disks[2], "rb") as fh:
        assert hashlib.file_digest(fh, "sha256").hexdigest() == hash_after
    [scan] = _lines(result.output, "md-scan")
    assert "devices=/dev/vdc1" in scan and "devices=/dev/vdc " in scan, scan


def test_the_kernel_reads_the_new_gpt_itself(vm) -> None:
    result, _ = vm
    assert _lines(result.output, "parts-forgotten") == ["0"]
    [found] = _lines(result.output, "kernel-gpt")
    gpt = json.loads(found)
    assert sorted(gpt["sysfs"]) == [f"vda{n}" for n in range(1, 7)]
    assert gpt["sysfs"] == gpt["table"]


def test_udev_gives_discovery_the_by_id_links(vm) -> None:
    result, _ = vm
    [found] = _lines(result.output, "discovery")
    disks = json.loads(found)
    for index, name in enumerate(DISKS):
        assert disks[name]["serial"] == disk_serial(index)
        assert f"/dev/disk/by-id/virtio-{disk_serial(index)}" in disks[name]["by_id"]
    [links] = _lines(result.output, "by-id")
    assert f"virtio-{disk_serial(0)}-part4" in links.split()


def test_the_esp_mounts_as_vfat_and_holds_the_removable_path_loader(vm) -> None:
    result, _ = vm
    [mount] = _lines(result.output, "esp-mount")
    _source, target, fstype, options, *_ = mount.split()
    assert (target, fstype) == ("/tmp/esp", "vfat")
    assert "ro" in options.split(",")
    files = {name.lower() for name in _lines(result.output, "esp-file")}
    assert "./efi/boot/bootx64.efi" in files
