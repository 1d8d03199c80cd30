"""Where an install writes: ``--target-disk`` (a block device or a disk image file) in place of
the disk the answer file names, and XCP-ng's short disk names.

An image file is attached to a loop device for the whole run, so the planner, the guard rails and
the backends all see a real block device. Anything else is passed on untouched, so discovery
refuses it with its own reason (no such device, not a block device) before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

from answerfiles.model import AnswerFile, Mode, PrimaryDisk
from installer.block import loop
from installer.errors import RefusedError

log = logging.getLogger(__name__)


def disk_path(name: str) -> str:
    """XCP-ng's disk naming: ``sda`` is ``/dev/sda`` and ``disk/by-id/x`` is under ``/dev``."""
    return name if name.startswith("/") else f"/dev/{name}"


def is_image_file(target: str | None) -> TypeGuard[str]:
    """A regular file (or a link to one) is a disk image; block devices and paths that do not
    exist are left to discovery to judge."""
    return target is not None and Path(target).is_file()


@contextlib.contextmanager
def target_device(target: str | None) -> Iterator[str | None]:
    """``--target-disk`` as a block device path; an image file is attached for the duration."""
    if is_image_file(target):
        with loop.attached(target) as device:
            yield device
    else:
        yield target


def with_target_disk(answers: AnswerFile, device: str | None) -> AnswerFile:
    """The answer file with the disk its mode works on replaced by ``--target-disk``."""
    if device is None:
        return answers
    if answers.mode in (Mode.FRESH, Mode.REINSTALL):
        if answers.raid is not None:
            raise RefusedError(
                f"--target-disk {device} cannot stand in for the primary disk: this answer file "
                f"makes software RAID1 {answers.raid.device} of "
                f"{', '.join(answers.raid.disks)} and installs onto that; leave out "
                "--target-disk, or remove <raid>"
            )
        primary = answers.primary_disk
        new = (
            dataclasses.replace(primary, disk=device)
            if primary is not None
            else PrimaryDisk(disk=device)
        )
        return dataclasses.replace(answers, primary_disk=new)
    if answers.mode == Mode.UPGRADE:
        return dataclasses.replace(answers, existing_installation=device)
    return dataclasses.replace(answers, backup_disk=device)


def image_only(answers: AnswerFile, target: str | None) -> AnswerFile:
    """Installing onto an image file touches that file only: the answers' guest disks are
    real disks of this machine, so they are left out."""
    if not is_image_file(target) or not answers.guest_disks:
        return answers
    log.warning(
        "installing onto the image %s: guest disks %s are left alone",
        target,
        ", ".join(answers.guest_disks),
    )
    return dataclasses.replace(answers, guest_disks=())
