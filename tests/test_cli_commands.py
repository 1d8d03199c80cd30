"""Both console scripts: every lazily registered command group imports and answers --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from installer.cli import main as install_cli
from xcp_provision import main as provision_cli

COMMANDS = [(provision_cli.main, name) for name in provision_cli.COMMANDS] + [
    (install_cli.main, name) for name in install_cli.COMMANDS
]


@pytest.mark.parametrize(("group", "name"), COMMANDS, ids=[name for _, name in COMMANDS])
def test_every_command_loads_and_has_help(group, name):
    result = CliRunner().invoke(group, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_top_level_help_lists_every_command():
    for group, names in ((provision_cli.main, provision_cli.COMMANDS),
                         (install_cli.main, install_cli.COMMANDS)):
        output = CliRunner().invoke(group, ["--help"]).output
        assert all(f"  {name} " in output for name in names), output
