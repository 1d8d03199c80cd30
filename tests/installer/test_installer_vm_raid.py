"""Software RAID1 as the primary disk, for real: the installer in its own boot image mirrors two
disks (BIOS layout on one pair, UEFI layout on another), and each disk then boots alone.

This machine's kernel has no md, so the installs run inside the installer image under QEMU
(``tests/support/installer_vm.py``): one boot installs from a RAID1 answer file onto ``vda`` and
``vdb`` (BIOS), stops the array as a reboot would, then onto ``vdc`` and ``vdd`` (UEFI), and
prints what the kernel made of each array. The members start blank, so the first resync would
copy zeros over zeros; it is held to 1 KiB/s so that it does not write two disks' worth of zeros
into the disk files while the VM runs.

The host then reads the four disk files with its own tools: md's superblock (version 1.0, at the
end, data from sector 0) and the same array UUID on both members of a pair; the same partition
table, boot code, core image, ESP and root filesystem on both; the installed dom0's
``mdadm.conf`` and inventory naming the array. Finally each member boots alone under QEMU, the
other absent, with SeaBIOS or OVMF: firmware, our GRUB from that disk, our menu, then the test
release's placeholder hypervisor ("no multiboot header found") read from the mirror's root.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release
from support.installer_vm import WORKDIR, VmResult, blank_disk, run_in_installer_vm

from common import runner
from common.runner import run

pytestmark = [pytest.mark.root, pytest.mark.slow]

GIB = 1 << 30
SECTOR = 512
MEMBER_BYTES = 48 * GIB
HOSTNAME = "raidhost"
MODES = {"bios": ("vda", "vdb"), "uefi": ("vdc", "vdd")}
OVMF = Path("/usr/share/ovmf/OVMF.fd")
REACHED_XEN = "no multiboot header found"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <raid device="md127"><disk>FIRST</disk><disk>SECOND</disk></raid>
  <primary-disk>md127</primary-disk>
  <source type="url">file://WORKDIR/release</source>
  <admin-interface name="eth0" proto="dhcp"/>
  <hostname>HOSTNAME</hostname>
</installation>
"""
SCRIPT = r"""
modprobe raid1
echo 1 > /proc/sys/dev/raid/speed_limit_min
echo 1 > /proc/sys/dev/raid/speed_limit_max
for mode in bios uefi; do
    xcp-install --answerfile $mode.xml --boot-mode $mode --json-events > /tmp/$mode.events 2>&1
    status=$?
    echo "@@install $mode $status"
    [ $status -eq 0 ] || tail -n 40 /tmp/$mode.events
    udevadm settle
    echo "@@detail $mode $(mdadm --detail --export /dev/md127 | tr '\n' ' ')"
    echo "@@state $mode $(cat /sys/block/md127/md/array_state) $(cat /sys/block/md127/md/level)"
    for member in /sys/block/md127/md/dev-*; do
        echo "@@offset $mode ${member##*/dev-} $(cat $member/offset)"
    done
    echo "@@links $mode $(ls /dev/disk/by-id | grep '^md-' | tr '\n' ' ')"
    mdadm --stop /dev/md127 || exit 10
done
"""


def _lines(output: str, tag: str) -> list[str]:
    prefix = f"@@{tag} "
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]


def _answerfile(mode: str) -> str:
    first, second = MODES[mode]
    return (
        ANSWERFILE.replace("FIRST", first)
        .replace("SECOND", second)
        .replace("WORKDIR", WORKDIR)
        .replace("HOSTNAME", HOSTNAME)
    )


@pytest.fixture(scope="module")
def vm(installer_image, tmp_path_factory) -> Iterator[tuple[VmResult, dict[str, Path]]]:
    work = tmp_path_factory.mktemp("raid")
    small_release.build(work / "release")
    disks = {name: blank_disk(work / f"{name}.img", MEMBER_BYTES)
             for pair in MODES.values() for name in pair}  # fmt: skip
    files = {"release": work / "release", **{f"{m}.xml": _answerfile(m) for m in MODES}}
    try:
        result = run_in_installer_vm(
            installer_image, list(disks.values()), SCRIPT, timeout=900, files=files
        )
        yield result, disks
    finally:
        for disk in disks.values():
            disk.unlink(missing_ok=True)


@contextlib.contextmanager
def _read_only_loop(image: Path) -> Iterator[str]:
    device = run(["losetup", "--read-only", "--find", "--show", image]).stdout.strip()
    try:
        yield device
    finally:
        run(["losetup", "--detach", device])


def _examine(image: Path) -> dict[str, str]:
    """The member's md superblock as the host's mdadm reads it (no md driver needed)."""
    with _read_only_loop(image) as device:
        out = run(["mdadm", "--examine", device]).stdout
    return {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(" : ") for line in out.splitlines())
        if sep
    }


def _table(image: Path) -> dict:
    return json.loads(run(["sfdisk", "--json", image]).stdout)["partitiontable"]


def _entries(image: Path) -> list[tuple]:
    """The table's entries without their node names (which name the file)."""
    return [(p["node"][-1], p["start"], p["size"], p["type"], p["uuid"], p.get("name"))
            for p in _table(image)["partitions"]]  # fmt: skip


def _partition(image: Path, number: int) -> tuple[int, int]:
    """Where partition ``number`` of the member's table lies, in bytes: (offset, size)."""
    [entry] = [p for p in _table(image)["partitions"] if p["node"].endswith(str(number))]
    return entry["start"] * SECTOR, entry["size"] * SECTOR


def _read(image: Path, offset: int, length: int) -> bytes:
    with open(image, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _probe(image: Path, number: int) -> dict[str, str]:
    offset, size = _partition(image, number)
    out = run(["blkid", "--probe", "--output", "export", "--offset", str(offset),
               "--size", str(size), image]).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _root_file(image: Path, path: str) -> str:
    """A file of the installed dom0, read from this member's copy of the root filesystem."""
    offset, _ = _partition(image, 1)
    return run(["debugfs", "-R", f"cat {path}", f"{image}?offset={offset}"]).stdout


def _esp_file(image: Path, path: str, tmp: Path) -> bytes:
    offset, _ = _partition(image, 4)
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / Path(path).name
    run(["mcopy", "-n", "-i", f"{image}@@{offset}", f"::{path}", out],
        env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    return out.read_bytes()


def _boot_alone(disks: dict[str, tuple[Path, list[str]]], work: Path, timeout: float = 300):
    """Boot each disk as its machine's only disk (a snapshot: the file stays as it is), two
    machines at a time (TCG runs one per core), each until GRUB reaches the hypervisor; return
    each one's serial console."""
    logs: dict[str, str] = {}
    pending = list(disks.items())
    while pending:
        batch, pending = pending[:2], pending[2:]
        running = {}
        for key, (image, firmware) in batch:
            serial = work / f"{key}.serial.log"
            running[key] = (serial, runner.start(
                ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-display", "none",
                 "-monitor", "none", "-serial", f"file:{serial}", "-net", "none", "-no-reboot",
                 *firmware, "-drive", f"file={image},format=raw,if=ide,snapshot=on"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while running and time.monotonic() < deadline:
                for key, (serial, proc) in list(running.items()):
                    text = serial.read_text(errors="replace") if serial.exists() else ""
                    if REACHED_XEN in text or proc.poll() is not None:
                        proc.kill()
                        proc.wait()
                        del running[key]
                time.sleep(0.5)
        finally:
            for _, proc in running.values():
                proc.kill()
                proc.wait()
        for key, _ in batch:
            serial = work / f"{key}.serial.log"
            logs[key] = ANSI.sub(" ", serial.read_text(errors="replace")) if serial.exists() else ""
    return logs


@pytest.fixture(scope="module")
def alone(vm, tmp_path_factory) -> dict[str, str]:
    """Each member booted with the other absent: SeaBIOS for the BIOS pair, OVMF for UEFI."""
    _, disks = vm
    firmware = {"bios": [], "uefi": ["-bios", str(OVMF)]}
    wanted = {name: (disks[name], firmware[mode]) for mode, pair in MODES.items()
              for name in pair}  # fmt: skip
    return _boot_alone(wanted, tmp_path_factory.mktemp("alone"))


@pytest.mark.parametrize("mode", MODES)
def test_the_install_onto_the_mirror_succeeds(vm, mode: str) -> None:
    result, _ = vm
    assert result.exit_code == 0, result.console[-6000:]
    assert f"{mode} 0" in _lines(result.output, "install"), result.output[-6000:]


@pytest.mark.parametrize("mode", MODES)
def test_the_kernel_runs_a_metadata_1_0_mirror_of_both_disks(vm, mode: str) -> None:
    result, _ = vm
    [detail] = [line for line in _lines(result.output, "detail") if line.startswith(mode)]
    values = dict(word.split("=", 1) for word in detail.split()[1:])
    assert (values["MD_LEVEL"], values["MD_METADATA"], values["MD_DEVICES"]) == (
        "raid1",
        "1.0",
        "2",
    )
    assert values["MD_NAME"] == f"{HOSTNAME}:127"
    assert {values[k] for k in values if k.endswith("_DEV")} == {
        f"/dev/{name}" for name in MODES[mode]
    }
    [state] = [line.split()[1:] for line in _lines(result.output, "state")
               if line.startswith(mode)]  # fmt: skip
    assert state[1] == "raid1" and state[0] in ("clean", "active", "active-idle")
    offsets = {line.split()[1]: line.split()[2] for line in _lines(result.output, "offset")
               if line.startswith(mode)}  # fmt: skip
    assert offsets == dict.fromkeys(MODES[mode], "0")
    [links] = [line for line in _lines(result.output, "links") if line.startswith(mode)]
    assert f"md-name-{HOSTNAME}:127-part1" in links.split()


@pytest.mark.parametrize("mode", MODES)
def test_both_members_carry_the_same_superblock_at_their_end(vm, mode: str) -> None:
    _, disks = vm
    first, second = (_examine(disks[name]) for name in MODES[mode])
    for member in (first, second):
        assert member["Version"] == "1.0"
        assert member["Raid Level"] == "raid1"
        assert member["Raid Devices"] == "2"
        assert member["Name"].startswith(f"{HOSTNAME}:127")
        # mdadm prints a data offset only when there is one; metadata 1.0 has none.
        assert member.get("Data Offset", "0 sectors") == "0 sectors"
        assert member["Unused Space"].startswith("before=0 sectors")
        super_offset = int(member["Super Offset"].split()[0])
        assert super_offset * SECTOR > MEMBER_BYTES - 64 * 1024
    assert first["Array UUID"] == second["Array UUID"]
    assert first["Device UUID"] != second["Device UUID"]


@pytest.mark.parametrize("mode", MODES)
def test_each_member_starts_with_the_arrays_table_and_boot_code(vm, mode: str) -> None:
    _, disks = vm
    first, second = (disks[name] for name in MODES[mode])
    table = _table(first)
    assert table["label"] == "gpt"
    assert _table(second)["id"] == table["id"]
    assert _entries(second) == _entries(first)
    on_disk = sorted(table["partitions"], key=lambda p: p["start"])
    assert [int(re.search(r"(\d+)$", p["node"]).group(1)) for p in on_disk] == [5, 2, 1, 4, 6, 3]
    # The array is smaller than its members: its table ends before md's superblock.
    assert table["lastlba"] < MEMBER_BYTES // SECTOR - 2048
    for number in range(1, 7):
        assert _partition(first, number) == _partition(second, number)
    boot_offset, _ = _partition(first, 4)
    if mode == "bios":
        mbr = _read(first, 0, SECTOR)
        assert b"GRUB" in mbr[:440] and mbr[510:] == b"\x55\xaa"
        assert _read(second, 0, SECTOR) == mbr
        core = _read(first, boot_offset, 64 * 1024)
        assert core.strip(b"\0") and _read(second, boot_offset, 64 * 1024) == core
    else:
        assert _probe(first, 4)["TYPE"] == "vfat"


@pytest.mark.parametrize("mode", MODES)
def test_each_member_holds_the_installed_root(vm, mode: str) -> None:
    _, disks = vm
    first, second = (disks[name] for name in MODES[mode])
    probed = _probe(first, 1)
    assert probed["TYPE"] == "ext3" and probed["LABEL"].startswith("root-")
    assert _probe(second, 1)["LABEL"] == probed["LABEL"]
    for path in ("/boot/grub/grub.cfg", "/etc/mdadm/mdadm.conf", "/etc/xensource-inventory"):
        assert _root_file(first, path) == _root_file(second, path), path


@pytest.mark.parametrize("mode", MODES)
def test_dom0_gets_the_arrays_mdadm_conf_and_inventory(vm, mode: str) -> None:
    _, disks = vm
    member = disks[MODES[mode][0]]
    uuid = _examine(member)["Array UUID"]
    conf = _root_file(member, "/etc/mdadm/mdadm.conf")
    assert f"ARRAY /dev/md127 metadata=1.0 name={HOSTNAME}:127 UUID={uuid}" in conf.splitlines()
    inventory = dict(
        line.split("=", 1) for line in _root_file(member, "/etc/xensource-inventory").splitlines()
    )
    link = f"/dev/disk/by-id/md-name-{HOSTNAME}:127"
    assert inventory["PRIMARY_DISK"] == f"'{link}'"
    assert inventory["BACKUP_PARTITION"] == f"'{link}-part2'"
    assert inventory["FIRMWARE"] == f"'{mode}'"
    storage = _root_file(member, "/etc/firstboot.d/data/default-storage.conf")
    assert f"XSPARTITIONS='{link}-part3'" in storage.splitlines()


def test_each_uefi_member_carries_the_removable_path_loader(vm, tmp_path: Path) -> None:
    _, disks = vm
    first, second = (disks[name] for name in MODES["uefi"])
    loader = _esp_file(first, "/EFI/BOOT/BOOTX64.EFI", tmp_path / "a")
    assert loader[:2] == b"MZ"
    assert b"mdraid1x" in loader  # GRUB's md driver is built in, to read inside the mirror
    assert _esp_file(second, "/EFI/BOOT/BOOTX64.EFI", tmp_path / "b") == loader
    assert _esp_file(first, "/EFI/xcp-provision/grubx64.efi", tmp_path / "c") == loader


@pytest.mark.parametrize("name", [name for pair in MODES.values() for name in pair])
def test_each_member_boots_alone_into_our_grub_and_the_hypervisor(alone, name: str) -> None:
    log = alone[name]
    for title in ("XCP-provision (Serial)", "XCP-provision in Safe Mode"):
        assert title in log, log[-3000:]
    assert "Booting `XCP-provision'" in log
    assert REACHED_XEN in log
