"""``xcp-install partition``: plan, then wipe, partition and make the filesystems."""

from __future__ import annotations

import click
from rich.console import Console

from installer.bootmode import booted_mode
from installer.cli.plan import plan_for, plan_table, read_answers, run_guarded
from installer.partition import apply_plan
from installer.plan import BootMode
from installer.target import target_device


@click.command()
@click.option("--answerfile", "answerfile", required=True, metavar="SRC",
              help="Answer file path.")
@click.option("--target-disk", metavar="PATH",
              help="A block device or a disk image file (attached to a loop device and "
                   "detached after), instead of the primary disk.")
@click.option("--boot-mode", type=click.Choice([m.value for m in BootMode]),
              help="Default: as this machine booted.")
@click.pass_context
def partition(ctx: click.Context, answerfile: str, target_disk: str | None,
              boot_mode: str | None) -> None:
    """Wipe, partition and format the disks an answer file names (exit 2: nothing written)."""
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    mode = BootMode(boot_mode) if boot_mode else booted_mode()

    def work() -> None:
        answers = read_answers(answerfile)
        with target_device(target_disk) as target:
            made = plan_for(answers, target, mode)
            applied = apply_plan(made, progress=lambda msg: err.print(msg, markup=False))
        out.print(plan_table(made))
        for role, device in sorted(applied.devices.items()):
            out.print(f"{role}: {device}", markup=False)
        for guest in applied.guest_disks:
            out.print(f"guest disk {guest}: empty GPT", markup=False)

    ctx.exit(run_guarded(err, work))
