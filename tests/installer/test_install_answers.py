"""What the fresh-install backend makes of the answer file's management NIC and local SR.

No disk is written here: the NIC is picked from the host's NICs before anything is, and the SR
request is computed from the plan and the partition nodes apply_plan reports.
"""

from __future__ import annotations

import pytest

from answerfiles.model import AdminInterface, AnswerFile, PrimaryDisk, SrType
from installer import install
from installer.discovery import Disk, Hardware, Nic
from installer.errors import RefusedError
from installer.plan import BootMode, make_plan

GIB = 1 << 30
NICS = (
    Nic("eno1", "52:54:00:00:00:01", "e1000", True, 1000),
    Nic("eno2", "52:54:00:00:00:02", "e1000", False, None),
)


def nic_for(**attrs: str) -> tuple[str, str | None]:
    return install.management_nic(AnswerFile(admin_interface=AdminInterface(**attrs)), NICS)


def test_name_and_hwaddr_must_name_the_same_nic() -> None:
    """Agreeing, they are taken; disagreeing, refused before any write (XCP-ng takes the name)."""
    assert nic_for(name="eno2", hwaddr="52:54:00:00:00:02".upper()) == ("eno2", "52:54:00:00:00:02")
    with pytest.raises(RefusedError) as err:
        nic_for(name="eno1", hwaddr="52:54:00:00:00:02")
    assert str(err.value) == (
        'admin-interface name="eno1" and hwaddr="52:54:00:00:00:02" name different interfaces '
        "(52:54:00:00:00:02 is eno2); this host has: eno1 52:54:00:00:00:01, "
        "eno2 52:54:00:00:00:02; correct one of them or give only one"
    )
    assert err.value.exit_code == 2


def test_a_name_the_host_lacks_with_a_mac_it_has_is_refused() -> None:
    with pytest.raises(
        RefusedError, match='name="eth0" and hwaddr="52:54:00:00:00:01" name different interfaces'
    ):
        nic_for(name="eth0", hwaddr="52:54:00:00:00:01")


def disk(name: str, *, by_id: tuple[str, ...] = (), sector: int = 512) -> Disk:
    return Disk(
        name=name,
        path=f"/dev/{name}",
        size_bytes=100 * GIB,
        by_id=by_id,
        logical_sector=sector,
        physical_sector=sector,
    )


def test_the_sr_request_names_its_devices_stably_as_xcpng_does() -> None:
    hw = Hardware(
        (
            disk("sda", by_id=("/dev/disk/by-id/ata-PRIMARY",)),
            disk("sdb", by_id=("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",)),
            disk("sdc"),
        )
    )
    answers = AnswerFile(
        primary_disk=PrimaryDisk("sda"), guest_disks=("sdb", "sdc"), sr_type=SrType.LVM
    )
    plan = make_plan(answers, hw, BootMode.UEFI)
    storage = install.local_storage(plan, {"sr": "/dev/sda3", "root": "/dev/sda1"})
    assert storage is not None
    assert storage.sr_type is SrType.LVM
    assert storage.devices == (
        "/dev/disk/by-id/ata-PRIMARY-part3",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
        "/dev/sdc",
    )


def test_without_guest_storage_only_guest_disks_make_the_sr() -> None:
    hw = Hardware((disk("sda"), disk("sdb", sector=4096)))
    answers = AnswerFile(primary_disk=PrimaryDisk("sda", guest_storage=False), guest_disks=("sdb",))
    storage = install.local_storage(make_plan(answers, hw, BootMode.BIOS), {})
    assert storage == install.hostconfig.LocalStorage(SrType.LARGEBLOCK, ("/dev/sdb",))


def test_no_sr_without_guest_storage_or_guest_disks() -> None:
    answers = AnswerFile(primary_disk=PrimaryDisk("sda", guest_storage=False))
    plan = make_plan(answers, Hardware((disk("sda"),)), BootMode.BIOS)
    assert install.local_storage(plan, {}) is None
