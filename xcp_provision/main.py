"""Entry point of ``xcp-provision``: the server and its admin commands, image building, the lab."""

from __future__ import annotations

import click

from common.lazycli import LazyGroup

COMMANDS = {
    "answerfile": "pxe.cli.answerfile:answerfile",
    "serve": "xcp_provision.serve:serve",
    "tokens": "pxe.cli.tokens:tokens",
    "hosts": "pxe.cli.hosts:hosts",
    "profiles": "pxe.cli.profiles:profiles",
    "pools": "pxe.cli.pools:pools",
    "events": "pxe.cli.events:events",
    "audit": "pxe.cli.audit:audit",
    "reinstalls": "pxe.cli.reinstalls:reinstalls",
    "images": "images.cli:images",
    "lab": "lab.cli:lab",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xcp-provision")
def main() -> None:
    """Provision Xen hosts: answer files, images, network boot, inventory and pools."""
