"""Entry point of ``xcp-provision``, the server and its admin commands."""

from __future__ import annotations

import click

from pxe.cli.lazy import LazyGroup

COMMANDS = {
    "answerfile": "pxe.cli.answerfile:answerfile",
    "serve": "pxe.cli.serve:serve",
    "tokens": "pxe.cli.tokens:tokens",
    "hosts": "pxe.cli.hosts:hosts",
    "profiles": "pxe.cli.profiles:profiles",
    "pools": "pxe.cli.pools:pools",
    "events": "pxe.cli.events:events",
    "images": "pxe.cli.images:images",
    "lab": "pxe.cli.lab:lab",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xcp-provision")
def main() -> None:
    """Provision Xen hosts: answer files, images, network boot, inventory and pools."""
