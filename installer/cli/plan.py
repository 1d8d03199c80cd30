"""``xcp-install plan``: show what would be written where, and write nothing.

Also the shared first half of ``xcp-install partition``: read the answer file, see the hardware,
put ``--target-disk`` in place of the primary disk, and make the plan. A disk image file given as
``--target-disk`` is attached to a loop device for the time of the command (attaching writes
nothing to the image).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from answerfiles.errors import AnswerFileError
from answerfiles.model import AnswerFile
from common.errors import ReportedError
from installer import discovery, sources
from installer.block.mdadm import METADATA as RAID_METADATA
from installer.bootmode import booted_mode
from installer.plan import (
    GPT_BASIC_DATA,
    GPT_BIOS_BOOT,
    GPT_ESP,
    GPT_LINUX_LVM,
    GPT_LINUX_SWAP,
    BootMode,
    Plan,
    make_plan,
)
from installer.target import disk_path, target_device, with_target_disk

# gdisk's short codes, as the XCP-ng documentation writes the layout; fits in 80 columns.
_TYPE_CODES = {
    GPT_BASIC_DATA: "0700",
    GPT_LINUX_LVM: "8e00",
    GPT_ESP: "ef00",
    GPT_BIOS_BOOT: "ef02",
    GPT_LINUX_SWAP: "8200",
}


def read_answers(location: str) -> AnswerFile:
    return sources.parse_loaded(sources.load_answerfile(location)).answers


def plan_for(answers: AnswerFile, target: str | None, boot_mode: BootMode) -> Plan:
    hardware = discovery.discover()
    answers = with_target_disk(answers, target)
    named = [answers.primary_disk.disk] if answers.primary_disk else []
    members = answers.raid.disks if answers.raid else ()
    for name in [*named, *members, *answers.guest_disks]:
        hardware = _with_named_device(hardware, name)
    return make_plan(answers, hardware, boot_mode, installer_disk=discovery.installer_disks())


def _with_named_device(hardware: discovery.Hardware, name: str) -> discovery.Hardware:
    """Discovery skips loop devices and arrays; one named outright by path is described."""
    path = disk_path(name)
    if "/dev/disk/" in path or not os.path.exists(path):
        return hardware
    disk = discovery.describe_disk(path)
    if hardware.disk(disk.path) is not None:
        return hardware
    return replace(hardware, disks=(*hardware.disks, disk))


def run_guarded(console: Console, work: Any) -> int:
    """Map the error kinds onto the exit-code contract: 2 refused (nothing written), 1 failed."""
    try:
        work()
    except AnswerFileError as exc:
        console.print(f"refused: the answer file cannot be used:\n{exc}", markup=False)
        return 2
    except ReportedError as exc:
        verb = "refused" if exc.exit_code == 2 else "failed"
        console.print(f"{verb}: {exc}", markup=False)
        return exc.exit_code
    return 0


def plan_table(plan: Plan) -> Table:
    disk = plan.primary.disk
    table = Table(
        title=f"{disk.path}  {disk.size_bytes / 2**30:.1f} GiB  {plan.boot_mode}  "
        f"labels *-{plan.label_suffix}"
    )
    for column in ("#", "role", "start MiB", "size MiB", "type", "fs", "label"):
        table.add_column(column, justify="right" if "MiB" in column or column == "#" else "left")
    for spec in plan.primary.on_disk_order:
        table.add_row(
            str(spec.number),
            spec.role,
            str(spec.start_bytes >> 20),
            str(spec.size_bytes >> 20),
            _TYPE_CODES.get(spec.gpt_type, spec.gpt_type),
            spec.filesystem or "",
            spec.label or "",
        )
    return table


def plan_json(plan: Plan) -> dict[str, Any]:
    def disk_plan(disk_plan: Any) -> dict[str, Any]:
        disk = disk_plan.disk
        return {
            "disk": {
                "path": disk.path,
                "size_bytes": disk.size_bytes,
                "serial": disk.serial,
                "wwn": disk.wwn,
                "by_id": list(disk.by_id),
                "logical_sector": disk.logical_sector,
            },
            "partitions": [
                {
                    "number": p.number,
                    "role": p.role,
                    "start": p.start,
                    "end": p.end,
                    "size_bytes": p.size_bytes,
                    "gpt_type": p.gpt_type,
                    "flag": p.flag,
                    "name": p.name,
                    "filesystem": p.filesystem,
                    "label": p.label,
                    "preserve": p.preserve,
                }
                for p in disk_plan.on_disk_order
            ],
        }

    raid = plan.raid
    return {
        "boot_mode": str(plan.boot_mode),
        "label_suffix": plan.label_suffix,
        "primary": disk_plan(plan.primary),
        "raid": None
        if raid is None
        else {
            "device": raid.device,
            "level": "raid1",
            "metadata": RAID_METADATA,
            "size_bytes": raid.size_bytes,
            "members": [disk_plan(m)["disk"] for m in raid.members],
        },
        "guest_disks": [disk_plan(g) for g in plan.guest_disks],
        "notes": list(plan.notes),
    }


@click.command()
@click.option("--answerfile", "answerfile", required=True, metavar="SRC", help="Answer file path.")
@click.option(
    "--target-disk",
    metavar="PATH",
    help="A block device or a disk image file, instead of the primary disk.",
)
@click.option(
    "--boot-mode",
    type=click.Choice([m.value for m in BootMode]),
    help="Default: as this machine booted.",
)
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON.")
@click.pass_context
def plan(
    ctx: click.Context,
    answerfile: str,
    target_disk: str | None,
    boot_mode: str | None,
    as_json: bool,
) -> None:
    """Show the disk plan for an answer file; writes nothing."""
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    mode = BootMode(boot_mode) if boot_mode else booted_mode()

    def work() -> None:
        answers = read_answers(answerfile)
        with target_device(target_disk) as target:
            made = plan_for(answers, target, mode)
        if as_json:
            click.echo(json.dumps(plan_json(made), indent=2))
            return
        out.print(plan_table(made))
        for guest in made.guest_disks:
            out.print(f"guest disk {guest.disk.path}: empty GPT", markup=False)
        for note in made.notes:
            out.print(f"note: {note}", markup=False)

    ctx.exit(run_guarded(err, work))
