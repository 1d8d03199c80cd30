"""The pure disk plan: XCP-ng 8.3's layout to the sector, its variants and its refusals."""

from __future__ import annotations

import itertools

import pytest

from answerfiles.model import (
    AnswerFile,
    DiskRule,
    Mode,
    PreserveFirstPartition,
    PrimaryDisk,
    Provisioning,
    Raid,
    SrType,
)
from answerfiles.parse import parse_answerfile
from installer.discovery import Disk, DiskPartition, Hardware
from installer.errors import RefusedError
from installer.guards import GuardError
from installer.plan import (
    GPT_BASIC_DATA,
    GPT_BIOS_BOOT,
    GPT_ESP,
    GPT_LINUX_LVM,
    GPT_LINUX_SWAP,
    RAID_RESERVE_BYTES,
    BootMode,
    PlanError,
    make_plan,
)
from installer.target import with_target_disk

GIB = 1 << 30
MIB = 1 << 20


def disk(name: str = "sda", size_gib: float = 100, **kw) -> Disk:
    return Disk(name=name, path=f"/dev/{name}", size_bytes=int(size_gib * GIB), **kw)


def answers(target: str = "sda", **kw) -> AnswerFile:
    primary = {
        k: kw.pop(k) for k in ("guest_storage", "preserve_first_partition", "sr_at_end") if k in kw
    }
    return AnswerFile(primary_disk=PrimaryDisk(target, **primary), **kw)


def test_uefi_layout_numbers_order_sizes_types_and_labels():
    plan = make_plan(answers(), Hardware((disk(),)), BootMode.UEFI, suffix="abcdef")
    parts = {p.role: p for p in plan.primary.partitions}
    assert [p.number for p in plan.primary.partitions] == [1, 2, 3, 4, 5, 6]
    assert [p.number for p in plan.primary.on_disk_order] == [5, 2, 1, 4, 6, 3]
    assert {r: p.number for r, p in parts.items()} == {
        "root": 1,
        "backup": 2,
        "sr": 3,
        "boot": 4,
        "logs": 5,
        "swap": 6,
    }
    assert parts["logs"].start == 2048  # 1 MiB in 512-byte sectors
    assert parts["root"].size_bytes == 18 * GIB
    assert parts["backup"].size_bytes == 18 * GIB
    assert parts["boot"].size_bytes == 512 * MIB
    assert parts["logs"].size_bytes == 4 * GIB
    assert parts["swap"].size_bytes == 1 * GIB
    assert all(p.start % 2048 == 0 and p.sectors % 2048 == 0 for p in plan.primary.partitions)
    ordered = plan.primary.on_disk_order
    assert all(a.end + 1 == b.start for a, b in itertools.pairwise(ordered))
    last_usable = 100 * GIB // 512 - 34
    assert last_usable - 2048 < parts["sr"].end <= last_usable
    assert (
        parts["root"].gpt_type,
        parts["sr"].gpt_type,
        parts["boot"].gpt_type,
        parts["swap"].gpt_type,
    ) == (GPT_BASIC_DATA, GPT_LINUX_LVM, GPT_ESP, GPT_LINUX_SWAP)
    assert parts["boot"].flag == "esp" and parts["boot"].filesystem == "vfat"
    assert plan.label("root") == "root-abcdef"
    assert plan.label("logs") == "logs-abcdef"
    assert plan.label("swap") == "swap-abcdef"
    assert plan.label("boot") == "BOOT-ABCDEF"
    assert parts["root"].filesystem == "ext3" and parts["backup"].filesystem is None
    assert plan.partition("sr").label is None


def test_bios_boot_partition_has_no_filesystem():
    plan = make_plan(answers(), Hardware((disk(),)), BootMode.BIOS, suffix="abcdef")
    boot = plan.partition("boot")
    assert (boot.number, boot.gpt_type, boot.flag, boot.filesystem) == (
        4,
        GPT_BIOS_BOOT,
        "bios_grub",
        None,
    )
    with pytest.raises(KeyError):
        plan.label("boot")
    with pytest.raises(KeyError, match="unknown partition role"):
        plan.partition("esp")


def test_random_suffix_is_six_lowercase_letters_shared_by_all_labels():
    plan = make_plan(answers(), Hardware((disk(),)), BootMode.UEFI)
    suffix = plan.label_suffix
    assert len(suffix) == 6 and suffix.isalpha() and suffix.islower()
    assert plan.label("root").endswith(suffix) and plan.label("boot").endswith(suffix.upper())


def test_without_guest_storage_boot_takes_number_three():
    plan = make_plan(
        answers(guest_storage=False), Hardware((disk(),)), BootMode.UEFI, suffix="abcdef"
    )
    assert {p.role: p.number for p in plan.primary.partitions} == {
        "root": 1,
        "backup": 2,
        "boot": 3,
        "logs": 5,
        "swap": 6,
    }
    assert [p.role for p in plan.primary.on_disk_order] == [
        "logs",
        "backup",
        "root",
        "boot",
        "swap",
    ]


def test_utility_partition_is_preserved_and_shifts_numbers():
    util = DiskPartition(
        1,
        "/dev/sda1",
        2048,
        32 * MIB,
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "DELLUTILITY",
        fstype="vfat",
        label="DELLUTILITY",
    )
    plan = make_plan(
        answers(),
        Hardware((disk(partitions=(util,), table="gpt"),)),
        BootMode.UEFI,
        suffix="abcdef",
    )
    roles = {p.role: p for p in plan.primary.partitions}
    assert {r: p.number for r, p in roles.items()} == {
        "utility": 1,
        "root": 2,
        "backup": 3,
        "sr": 4,
        "boot": 5,
        "logs": 6,
        "swap": 7,
    }
    assert roles["utility"].preserve and roles["utility"].start == 2048
    assert roles["utility"].end == 2048 + 32 * 2048 - 1
    assert roles["logs"].start == 2048 + 32 * 2048
    assert [p.number for p in plan.primary.on_disk_order] == [1, 6, 3, 2, 5, 7, 4]
    assert any("preserved" in note for note in plan.notes)


def test_first_partition_not_a_utility_is_not_preserved_by_default():
    other = DiskPartition(
        1,
        "/dev/sda1",
        2048,
        32 * MIB,
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "",
        fstype="ext4",
        label="data",
    )
    hw = Hardware((disk(partitions=(other,), table="gpt"),))
    assert make_plan(answers(), hw, BootMode.UEFI).partition("root").number == 1
    forced = make_plan(
        answers(preserve_first_partition=PreserveFirstPartition.TRUE), hw, BootMode.UEFI
    )
    assert forced.partition("root").number == 2


def test_guest_disks_get_empty_tables():
    hw = Hardware((disk("sda"), disk("sdb", 10), disk("sdc", 20)))
    plan = make_plan(answers(guest_disks=("sdb", "sdc")), hw, BootMode.BIOS)
    assert [g.disk.path for g in plan.guest_disks] == ["/dev/sdb", "/dev/sdc"]
    assert all(g.partitions == () and g.wipe for g in plan.guest_disks)
    assert len(plan.identities) == 3


def test_4k_sector_disk_is_aligned_in_its_own_sectors():
    plan = make_plan(
        answers(),
        Hardware((disk(logical_sector=4096, physical_sector=4096),)),
        BootMode.UEFI,
        suffix="abcdef",
    )
    logs = plan.partition("logs")
    assert logs.start == 256 and logs.size_bytes == 4 * GIB


def test_too_small_says_minimum_and_size():
    with pytest.raises(GuardError) as err:
        make_plan(answers(), Hardware((disk(size_gib=40),)), BootMode.UEFI)
    assert err.value.rule == "too-small" and err.value.exit_code == 2
    assert "46 GiB" in str(err.value) and "40.0 GiB" in str(err.value)


def test_46_gib_is_enough():
    plan = make_plan(answers(), Hardware((disk(size_gib=46),)), BootMode.UEFI)
    assert plan.partition("sr").size_bytes > 4 * GIB


def test_removable_or_usb_refused_unless_named_by_stable_id():
    link = "/dev/disk/by-id/usb-Kingston_DataTraveler_123-0:0"
    for extra in ({"removable": True}, {"bus": "usb"}):
        hw = Hardware((disk(by_id=(link,), **extra),))
        with pytest.raises(GuardError) as err:
            make_plan(answers("sda"), hw, BootMode.UEFI)
        assert err.value.rule == "removable" and "by-id" in str(err.value)
        assert make_plan(answers(link), hw, BootMode.UEFI).primary.named_by_stable_id
        assert make_plan(answers("disk/by-id/" + link.rsplit("/", 1)[1]), hw, BootMode.UEFI)


def test_mounted_or_held_partition_refused():
    mounted = DiskPartition(2, "/dev/sda2", 4096, GIB, "x", "", mountpoints=("/mnt",))
    held = DiskPartition(2, "/dev/sda2", 4096, GIB, "x", "", holders=("md127",))
    for part, rule in ((mounted, "mounted"), (held, "held")):
        with pytest.raises(GuardError) as err:
            make_plan(answers(), Hardware((disk(partitions=(part,)),)), BootMode.UEFI)
        assert err.value.rule == rule


def test_guest_disk_in_use_refused():
    hw = Hardware((disk("sda"), disk("sdb", mountpoints=("[SWAP]",))))
    with pytest.raises(GuardError) as err:
        make_plan(answers(guest_disks=("sdb",)), hw, BootMode.UEFI)
    assert err.value.disk == "/dev/sdb"


def test_installer_disk_refused_for_primary_and_guest():
    hw = Hardware((disk("sda"), disk("sdb")))
    with pytest.raises(GuardError) as err:
        make_plan(answers(), hw, BootMode.UEFI, installer_disk="/dev/sda")
    assert err.value.rule == "installer-disk"
    with pytest.raises(GuardError):
        make_plan(answers(guest_disks=("sdb",)), hw, BootMode.UEFI, installer_disk="/dev/sdb")


def test_unknown_disk_names_the_disks_present():
    with pytest.raises(PlanError, match=r"sdz.*/dev/sda"):
        make_plan(answers("sdz"), Hardware((disk(),)), BootMode.UEFI)


def test_disk_rule_smallest_non_removable():
    hw = Hardware(
        (disk("sda", 500), disk("sdb", 60), disk("sdc", 50, removable=True), disk("sdd", 30))
    )
    rule = AnswerFile(provisioning=Provisioning(disk_rule=DiskRule(min_size_gib=46, smallest=True)))
    assert make_plan(rule, hw, BootMode.UEFI).primary.disk.path == "/dev/sdb"
    ambiguous = AnswerFile(provisioning=Provisioning(disk_rule=DiskRule(min_size_gib=46)))
    with pytest.raises(PlanError, match="2 disks match"):
        make_plan(ambiguous, hw, BootMode.UEFI)


def test_disk_rule_by_serial_and_wwn():
    hw = Hardware((disk("sda", serial="S1", wwn="0x5000c500a"), disk("sdb", serial="S2")))
    by_serial = AnswerFile(provisioning=Provisioning(disk_rule=DiskRule(serial="S2")))
    assert make_plan(by_serial, hw, BootMode.UEFI).primary.disk.name == "sdb"
    by_wwn = AnswerFile(provisioning=Provisioning(disk_rule=DiskRule(wwn="0x5000C500A")))
    assert make_plan(by_wwn, hw, BootMode.UEFI).primary.disk.name == "sda"


def test_refusals_for_modes_and_suffix():
    hw = Hardware((disk(),))
    with pytest.raises(PlanError, match="upgrade"):
        make_plan(answers(mode=Mode.UPGRADE), hw, BootMode.UEFI)
    with pytest.raises(PlanError, match="6 lowercase"):
        make_plan(answers(), hw, BootMode.UEFI, suffix="ABC")
    with pytest.raises(PlanError, match="no primary disk"):
        make_plan(AnswerFile(), hw, BootMode.UEFI)


def test_plan_is_pure_and_repeatable():
    hw = Hardware((disk(),))
    assert make_plan(answers(), hw, BootMode.UEFI, suffix="qwerty") == make_plan(
        answers(), hw, BootMode.UEFI, suffix="qwerty"
    )


def test_large_preserved_partition_can_make_the_disk_too_small():
    util = DiskPartition(1, "/dev/sda1", 2048, 8 * GIB, "de", "", label="DELLUTILITY")
    with pytest.raises(GuardError, match="after the preserved partition") as err:
        make_plan(
            answers(),
            Hardware((disk(size_gib=47, partitions=(util,), table="dos"),)),
            BootMode.UEFI,
        )
    assert err.value.rule == "too-small"


def test_utility_from_an_mbr_table_becomes_basic_data_named_by_its_label():
    util = DiskPartition(1, "/dev/sda1", 63, 32 * MIB, "de", "", label="DELLUTILITY")
    plan = make_plan(answers(), Hardware((disk(partitions=(util,), table="dos"),)), BootMode.BIOS)
    kept = plan.partition("utility")
    assert (kept.start, kept.gpt_type, kept.name) == (63, GPT_BASIC_DATA, "DELLUTILITY")
    assert plan.partition("logs").start == 2048 * 33  # next MiB boundary after sector 63+32 MiB


def test_gueststorage_spelling_from_an_answer_file_leaves_no_sr_partition():
    """XCP-ng's other spelling, gueststorage="no", is read like guest-storage."""
    parsed = parse_answerfile(
        '<installation><primary-disk gueststorage="no">sda</primary-disk>'
        '<source type="url">http://repo.example.com/r/</source>'
        '<admin-interface name="eth0" proto="dhcp"/></installation>'
    ).answers
    plan = make_plan(parsed, Hardware((disk(),)), BootMode.UEFI, suffix="abcdef")
    assert plan.primary.by_role("sr") is None
    assert plan.partition("boot").number == 3
    assert plan.sr_type is None  # no disk is given to an SR, so none is asked for


@pytest.mark.parametrize(
    ("asked", "primary_sector", "guest_sector", "expected"),
    [
        (None, 512, None, SrType.EXT),
        (None, 4096, None, SrType.LARGEBLOCK),
        (None, 512, 4096, SrType.LARGEBLOCK),
        (SrType.LVM, 512, 512, SrType.LVM),
        (SrType.LARGEBLOCK, 512, None, SrType.LARGEBLOCK),
    ],
)
def test_sr_type_is_chosen_as_xcpng_83_chooses_it(asked, primary_sector, guest_sector, expected):
    hw = [disk("sda", logical_sector=primary_sector, physical_sector=primary_sector)]
    guests = ()
    if guest_sector is not None:
        hw.append(disk("sdb", 50, logical_sector=guest_sector, physical_sector=guest_sector))
        guests = ("sdb",)
    plan = make_plan(answers(sr_type=asked, guest_disks=guests), Hardware(tuple(hw)), BootMode.UEFI)
    assert plan.sr_type is expected
    assert [d.disk.path for d in plan.sr_disks] == ["/dev/sda", *(f"/dev/{g}" for g in guests)]


@pytest.mark.parametrize("asked", [SrType.EXT, SrType.LVM])
def test_an_sr_type_a_4kn_disk_cannot_hold_is_refused(asked):
    hw = Hardware((disk("sda"), disk("sdb", 50, logical_sector=4096, physical_sector=4096)))
    with pytest.raises(PlanError) as err:
        make_plan(answers(sr_type=asked, guest_disks=("sdb",)), hw, BootMode.BIOS)
    assert str(err.value) == (
        f'/dev/sdb has 4096-byte logical sectors (4Kn), which an sr-type="{asked}" SR cannot '
        'hold: write sr-type="largeblock" or leave sr-type out'
    )


def test_a_4kn_primary_without_guest_storage_needs_no_largeblock():
    hw = Hardware((disk("sda", logical_sector=4096, physical_sector=4096),))
    plan = make_plan(answers(sr_type=SrType.EXT, guest_storage=False), hw, BootMode.UEFI)
    assert (plan.sr_type, plan.sr_disks) == (None, ())


def mirror(*members: str, device: str = "md127", **kw) -> AnswerFile:
    return answers(device, raid=Raid(device, members), **kw)


def test_raid_plan_names_every_member_and_lays_the_layout_on_the_array():
    hw = Hardware((disk("sda", 100), disk("sdb", 100), disk("sdc", 10)))
    plan = make_plan(mirror("sda", "sdb"), hw, BootMode.BIOS, suffix="abcdef")
    assert plan.raid is not None
    assert plan.raid.device == "/dev/md127"
    assert [m.disk.path for m in plan.raid.members] == ["/dev/sda", "/dev/sdb"]
    assert all(m.partitions == () for m in plan.raid.members)
    assert plan.raid.size_bytes == 100 * GIB - RAID_RESERVE_BYTES
    assert plan.raid.homehost == "localhost.localdomain"
    array = plan.primary.disk
    assert (array.path, array.size_bytes) == ("/dev/md127", plan.raid.size_bytes)
    # The layout is the array's: XCP-ng's, with the SR ending by the array's own backup GPT.
    assert [p.number for p in plan.primary.on_disk_order] == [5, 2, 1, 4, 6, 3]
    last_usable = plan.raid.size_bytes // 512 - 34
    assert last_usable - 2048 < plan.partition("sr").end <= last_usable
    assert plan.partition("boot").gpt_type == GPT_BIOS_BOOT
    # What apply_plan checks again before writing: the members, never the array to be made.
    assert [i.path for i in plan.identities] == ["/dev/sda", "/dev/sdb"]
    assert any("software RAID1 (md metadata 1.0) of /dev/sda, /dev/sdb" in n for n in plan.notes)


def test_raid_of_three_disks_by_stable_names_with_a_guest_disk():
    hw = Hardware(
        (
            disk("sda", 50, by_id=("/dev/disk/by-id/ata-A",)),
            disk("sdb", 50),
            disk("sdc", 50.2),
            disk("sdd", 10),
        )
    )
    plan = make_plan(
        mirror("disk/by-id/ata-A", "sdb", "sdc", guest_disks=("sdd",)), hw, BootMode.UEFI
    )
    assert [m.disk.path for m in plan.raid.members] == ["/dev/sda", "/dev/sdb", "/dev/sdc"]
    assert [m.named_by_stable_id for m in plan.raid.members] == [True, False, False]
    assert plan.raid.size_bytes == 50 * GIB - RAID_RESERVE_BYTES
    assert [g.disk.path for g in plan.guest_disks] == ["/dev/sdd"]
    assert [d.disk.path for d in plan.sr_disks] == ["/dev/md127", "/dev/sdd"]


def test_each_member_is_held_to_the_primary_disks_rails():
    small = Hardware((disk("sda", 100), disk("sdb", 40)))
    with pytest.raises(GuardError, match=r"/dev/sdb \(RAID member disk\) is too small") as err:
        make_plan(mirror("sda", "sdb"), small, BootMode.UEFI)
    assert err.value.rule == "too-small"
    mounted = Hardware((disk("sda", 100), disk("sdb", 100, mountpoints=("/mnt",))))
    with pytest.raises(GuardError, match=r"sdb.*mounted at /mnt") as err:
        make_plan(mirror("sda", "sdb"), mounted, BootMode.UEFI)
    assert err.value.rule == "mounted"
    usb = Hardware((disk("sda", 100), disk("sdb", 100, bus="usb")))
    with pytest.raises(GuardError, match=r"sdb.*USB") as err:
        make_plan(mirror("sda", "sdb"), usb, BootMode.UEFI)
    assert err.value.rule == "removable"
    ours = Hardware((disk("sda", 100), disk("sdb", 100)))
    with pytest.raises(GuardError, match=r"sda.*installer is running from") as err:
        make_plan(mirror("sda", "sdb"), ours, BootMode.UEFI, installer_disk="/dev/sda")
    assert err.value.rule == "installer-disk"


def test_members_may_differ_in_size_by_one_percent_not_more():
    near = Hardware((disk("sda", 100), disk("sdb", 100.9)))
    plan = make_plan(mirror("sda", "sdb"), near, BootMode.UEFI)
    assert plan.raid.size_bytes == 100 * GIB - RAID_RESERVE_BYTES
    far = Hardware((disk("sda", 100), disk("sdb", 120)))
    with pytest.raises(
        PlanError,
        match=r"differ in size by more than 1%: /dev/sdb has 120.0 "
        r"GiB, /dev/sda 100.0 GiB.* 20.0 GiB of /dev/sdb would "
        "be lost",
    ):
        make_plan(mirror("sda", "sdb"), far, BootMode.UEFI)


def test_members_of_different_sector_sizes_are_refused():
    hw = Hardware((disk("sda", 100), disk("sdb", 100, logical_sector=4096)))
    with pytest.raises(PlanError, match="different logical sector sizes"):
        make_plan(mirror("sda", "sdb"), hw, BootMode.UEFI)


def test_4kn_members_make_a_4kn_array_with_a_largeblock_sr():
    hw = Hardware(
        tuple(disk(n, 100, logical_sector=4096, physical_sector=4096) for n in ("sda", "sdb"))
    )
    plan = make_plan(mirror("sda", "sdb"), hw, BootMode.UEFI)
    assert plan.primary.disk.logical_sector == 4096
    assert plan.partition("logs").start == 256  # 1 MiB in 4 KiB sectors
    assert plan.sr_type is SrType.LARGEBLOCK


def test_a_member_named_twice_or_also_a_guest_disk_is_refused():
    hw = Hardware((disk("sda", 100, by_id=("/dev/disk/by-id/ata-A",)), disk("sdb", 100)))
    with pytest.raises(PlanError, match="named twice"):
        make_plan(mirror("sda", "disk/by-id/ata-A"), hw, BootMode.UEFI)
    with pytest.raises(PlanError, match="already used by this plan"):
        make_plan(mirror("sda", "sdb", guest_disks=("disk/by-id/ata-A",)), hw, BootMode.UEFI)
    with pytest.raises(PlanError, match="needs at least two member disks, found 1"):
        make_plan(mirror("sda"), hw, BootMode.UEFI)


def test_raid_that_is_not_the_primary_disk_is_refused_by_the_plan_too():
    hw = Hardware((disk("sda", 100), disk("sdb", 100), disk("sdc", 100)))
    with pytest.raises(PlanError, match="but the primary disk is sdc"):
        make_plan(answers("sdc", raid=Raid("md127", ("sda", "sdb"))), hw, BootMode.UEFI)


def test_target_disk_cannot_stand_in_for_a_mirror():
    with pytest.raises(RefusedError, match="--target-disk /dev/loop3 cannot stand in"):
        with_target_disk(mirror("sda", "sdb"), "/dev/loop3")


def test_utility_partitions_of_members_are_not_kept():
    util = DiskPartition(1, "/dev/sda1", 2048, 32 * MIB, "de", "", label="DELLUTILITY")
    hw = Hardware((disk("sda", 100, partitions=(util,), table="dos"), disk("sdb", 100)))
    plan = make_plan(mirror("sda", "sdb"), hw, BootMode.UEFI)
    assert plan.primary.by_role("utility") is None
    assert any("partition 1 of /dev/sda (DELLUTILITY) is not preserved" in n for n in plan.notes)
    keep = mirror("sda", "sdb", preserve_first_partition=PreserveFirstPartition.TRUE)
    with pytest.raises(PlanError, match='preserve-first-partition="true" cannot be honoured'):
        make_plan(keep, hw, BootMode.UEFI)
