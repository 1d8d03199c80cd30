"""Entry point of ``xcp-install``.

``xcp-install --answerfile SRC`` (or no argument at all: the kernel command line decides) runs an
install; ``xcp-install --tui`` asks the questions first; ``plan`` and ``partition`` expose the
disk stage alone. Exit codes for every form: 0 done, 1 failed while working, 2 refused before
writing anything.
"""

from __future__ import annotations

import importlib

import click

from common.lazycli import LazyGroup

COMMANDS = {
    "plan": "installer.cli.plan:plan",
    "partition": "installer.cli.partition:partition",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--answerfile", "answerfile", metavar="SRC", help="Answer file: a path or a URL.")
@click.option("--target-disk", metavar="PATH", help="Install here instead of the primary disk.")
@click.option("--boot-mode", type=click.Choice(["bios", "uefi"]), help="Default: as booted.")
@click.option("--json-events", is_flag=True, help="Progress as JSON lines on stdout.")
@click.option("--tui", is_flag=True, help="Ask the questions on screen (VGA or serial).")
@click.option("--target-image", metavar="FILE", help="With --tui: install onto a disk image file.")
@click.option("--plain", is_flag=True, help="With --tui: no colour, for serial consoles.")
@click.pass_context
def main(ctx: click.Context, **options: object) -> None:
    """Install a Xen host from an XCP-ng answer file, unattended or interactively."""
    if ctx.invoked_subcommand is not None:
        return
    # The install front-ends import pyparted and urwid; load them only when an install runs.
    module = importlib.import_module("installer.cli.install")
    ctx.exit(module.install(**options))
