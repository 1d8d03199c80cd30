"""The admin CLI from an operator's machine (``--server``) against a real ``serve`` on loopback:
each command group prints the same table and the same JSON as with ``--data-dir`` on the
server's own data directory, and every failure is one clear sentence."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.bmc_sim import FAKE_UUID_ON, closed_tcp_port, running_redfish
from support.serve import serve_process

from pxe.db.session import close_databases
from xcp_provision.main import main

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
ID_CELL = re.compile(r"│ +\d+ +│|(?<=^selector )\d+", re.M)


class Server:
    def __init__(self, url: str, data: Path, tmp: Path) -> None:
        self.url = url
        self.data = str(data)
        self.no_config = str(tmp / "absent-cli.toml")  # never the tester's own cli.toml
        self.admin = self.run_local("tokens", "create", "ops").strip().splitlines()[-1]
        self.viewer = self.run_local("tokens", "create", "look", "--role", "viewer")
        self.viewer = self.viewer.strip().splitlines()[-1]

    def invoke(self, args: tuple[str, ...], env: dict[str, str | None]) -> Any:
        # Wide enough for rich to print each table cell on one line.
        env = {"COLUMNS": "300", "XCP_PROVISION_SERVER": None, "XCP_PROVISION_TOKEN": None,
               "XCP_PROVISION_CLI_CONFIG": self.no_config, **env}  # fmt: skip
        return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)

    def run_local(self, *args: str, ok: bool = True) -> str:
        result = self.invoke((*args, "--data-dir", self.data), {})
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    def run_remote(self, *args: str, token: str | None = None, ok: bool = True) -> str:
        result = self.invoke(
            (*args, "--server", self.url), {"XCP_PROVISION_TOKEN": token or self.admin}
        )
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    def same(self, *args: str) -> str:
        """The command's table and its --json, asserted equal both ways; the table."""
        table = self.run_local(*args)
        assert self.run_remote(*args) == table
        local = self.run_local(*args, "--json")
        remote = self.run_remote(*args, "--json")
        assert remote == local
        return table


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("remote")
    data = tmp / "data"
    with serve_process(data, "--tftp-port", "0", "--no-dhcp") as (url, _proc):
        yield Server(url, data, tmp)
    close_databases()


def _plain(value: Any) -> Any:
    """A JSON value without what differs between twins: row ids, times, who asked."""
    if isinstance(value, dict):
        return {
            k: _plain(v)
            for k, v in value.items()
            if k not in ("id", "host_id", "created_at", "updated_at", "time", "requested_by")
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _twins(local: str, remote: str, swaps: dict[str, str]) -> None:
    """Outputs of one change made locally on one object and remotely on its twin: equal once
    the twin's names are swapped back and times and id cells set aside."""
    for theirs, ours in swaps.items():
        remote = remote.replace(theirs, ours)
    assert ID_CELL.sub("#", TIME.sub("T", remote)) == ID_CELL.sub("#", TIME.sub("T", local))


def _twin_json(local: str, remote: str, swaps: dict[str, str]) -> None:
    for theirs, ours in swaps.items():
        remote = remote.replace(theirs, ours)
    assert _plain(json.loads(remote)) == _plain(json.loads(local))


def test_reads_are_the_same_through_the_api(server: Server) -> None:
    server.run_local("profiles", "create", "base", "--release", "demo", "--template",
                     "fresh-dhcp", "--var", "timezone=Europe/Paris")  # fmt: skip
    server.run_local("profiles", "create", "rack", "--parent", "base", "--kernel-args", "quiet")
    server.run_local("profiles", "select", "rack", "serial", "RACK-*")
    server.run_local("pools", "create", "rack1")
    server.run_local("hosts", "add", "--mac", "52:54:00:00:10:01", "--hostname", "r1",
                     "--profile", "rack", "--pool", "rack1")  # fmt: skip
    server.run_local("hosts", "add", "--serial", "RACK-7")

    listed = server.same("hosts", "list")
    assert "r1" in listed and "RACK" not in listed and "discovered" in listed
    assert "rack1" in server.same("hosts", "list", "--pool", "rack1")
    assert "r1" in server.same("hosts", "show", "52:54:00:00:10:01")
    assert "added as ready" in server.same("events", "r1", "--limit", "5")
    assert "Europe/Paris" in server.same("profiles", "show", "rack")
    assert "serial=rack-*" in server.same("profiles", "list")
    assert "not registered yet" in server.same("pools", "show", "rack1")
    assert "rack1" in server.same("pools", "list")
    assert "hosts.add" in server.same("audit", "--limit", "50")
    # The API's own refusals read as the local ones do.
    assert "no host 'nosuch'" in server.run_remote("hosts", "show", "nosuch", ok=False).lower()


def test_changes_through_the_api_match_the_local_ones(server: Server) -> None:
    swaps = {"t-r": "t-l", "52:54:00:00:20:02": "52:54:00:00:20:01", "pr-r": "pr-l", "pl-r": "pl-l",
             "pj-r": "pj-l"}  # fmt: skip

    def twins(local_args: tuple[str, ...], remote_args: tuple[str, ...]) -> None:
        _twins(server.run_local(*local_args), server.run_remote(*remote_args), swaps)

    def twins_json(local_args: tuple[str, ...], remote_args: tuple[str, ...]) -> None:
        local = server.run_local(*local_args, "--json")
        _twin_json(local, server.run_remote(*remote_args, "--json"), swaps)

    twins(("profiles", "create", "pr-l", "--release", "demo", "--var", "ntp=[\"a\"]"),
          ("profiles", "create", "pr-r", "--release", "demo", "--var", "ntp=[\"a\"]"))  # fmt: skip
    twins_json(("profiles", "edit", "pr-l", "--disk", "sda"),
               ("profiles", "edit", "pr-r", "--disk", "sda"))  # fmt: skip
    twins(("profiles", "select", "pr-l", "mac", "52:54:00:99:*"),
          ("profiles", "select", "pr-r", "mac", "52:54:00:99:*"))  # fmt: skip
    twins(("hosts", "add", "--mac", "52:54:00:00:20:01", "--hostname", "t-l"),
          ("hosts", "add", "--mac", "52:54:00:00:20:02", "--hostname", "t-r"))  # fmt: skip
    twins_json(("hosts", "edit", "t-l", "--profile", "pr-l"),
               ("hosts", "edit", "t-r", "--profile", "pr-r"))  # fmt: skip
    twins(("hosts", "edit", "t-l", "--profile", ""), ("hosts", "edit", "t-r", "--profile", ""))
    twins(("hosts", "edit", "t-l", "--profile", "pr-l"),
          ("hosts", "edit", "t-r", "--profile", "pr-r"))  # fmt: skip
    twins_json(("hosts", "reinstall", "t-l"), ("hosts", "reinstall", "t-r"))
    assert "ready" in server.run_remote("hosts", "reinstall", "t-r")
    twins(("pools", "create", "pl-l"), ("pools", "create", "pl-r"))
    twins_json(("pools", "create", "pj-l", "--force"), ("pools", "create", "pj-r", "--force"))
    # What the remote changes left behind is what the local ones did.
    shown = server.run_remote("hosts", "show", "t-r", "--json")
    _twin_json(server.run_local("hosts", "show", "t-l", "--json"), shown, swaps)
    assert json.loads(shown)["profile"] == "pr-r"

    removed = json.loads(server.run_remote("hosts", "remove", "52:54:00:00:20:02", "--json"))
    assert removed == {"removed": json.loads(shown)["id"]}
    assert server.run_local("hosts", "remove", "t-l").startswith("removed host ")
    # A refusal of the store reads the same through the API.
    refused = server.run_remote("profiles", "delete", "pr-r", ok=False)
    assert refused == "Error: profile 'pr-r' has 1 selector(s); remove them first\n"
    _twins(server.run_local("profiles", "delete", "pr-l", ok=False), refused, swaps)
    assert server.run_remote("profiles", "delete", "pl-r", ok=False) == (
        "Error: no profile 'pl-r'\n"
    )
    server.run_local("profiles", "create", "pj-l")
    server.run_remote("profiles", "create", "pj-r")
    twins(("profiles", "delete", "pj-l", "--json"), ("profiles", "delete", "pj-r", "--json"))
    assert "pj-r" not in server.run_local("profiles", "list")
    names = {h["hostname"] for h in json.loads(server.run_local("hosts", "list", "--json"))}
    assert not names & {"t-l", "t-r"}
    audit = json.loads(server.run_local("audit", "--json", "--limit", "40"))
    assert any(r["actor"] == "ops" and r["action"] == "POST /api/v1/hosts" for r in audit)


def test_rolling_reinstall_through_the_api(server: Server) -> None:
    server.run_local("profiles", "create", "rollp", "--release", "demo")
    server.run_local("hosts", "add", "--mac", "52:54:00:00:30:01", "--hostname", "roll1",
                     "--profile", "rollp")  # fmt: skip
    started = server.run_remote("hosts", "reinstall", "roll1", "--max-parallel", "1")
    roll_id = re.match(r"roll (\d+): 1 host\(s\), 1 at a time", started)
    assert roll_id, started
    path = ("reinstalls", "show", roll_id.group(1))
    deadline = time.monotonic() + 30
    while json.loads(server.run_remote(*path, "--json"))["running"] != ["roll1"]:
        assert time.monotonic() < deadline, "the roll never started roll1"
        time.sleep(0.3)
    assert "roll1" in server.same(*path)
    assert "running" in server.same("reinstalls", "list")


def test_bmc_and_power_through_the_api(server: Server, tmp_path: Path) -> None:
    password = tmp_path / "bmc-password"
    with running_redfish(tmp_path / "redfish") as emulator:
        password.write_text(emulator.password + "\n")
        server.run_local("hosts", "add", "--mac", "52:54:00:00:40:01", "--hostname", "bmc1")
        server.run_local("hosts", "add", "--mac", "52:54:00:00:40:02", "--hostname", "bmc2")
        given = ("--driver", "redfish", "--address", emulator.url, "--username", "root",
                 "--password-file", str(password), "--no-verify-tls",
                 "--system-path", emulator.system_path(FAKE_UUID_ON))  # fmt: skip
        _twins(server.run_local("hosts", "bmc", "bmc1", *given),
               server.run_remote("hosts", "bmc", "bmc2", *given), {"bmc2": "bmc1"})  # fmt: skip
        assert emulator.password not in server.run_remote("hosts", "show", "bmc2", "--json")
        status = ("hosts", "power", "bmc2", "status", "--fresh")
        assert server.run_remote(*status) == server.run_local(*status) == "host bmc2: power on\n"
        reading = json.loads(server.run_remote(*status, "--json"))
        assert (reading["host"], reading["power"], reading["cached"]) == ("bmc2", "on", False)
        acted = json.loads(server.run_remote("hosts", "power", "bmc2", "off", "--json"))
        assert acted == {"host": "bmc2", "action": "off", "requested_by": "ops"}
        resets = [r for r in emulator.requests() if r["path"].endswith("ComputerSystem.Reset")]
        assert [r["body"] for r in resets] == [{"ResetType": "ForceOff"}]
        assert server.run_remote("hosts", "bmc", "bmc2", "--remove") == (
            "removed the BMC of host bmc2\n"
        )
        assert json.loads(server.run_local("hosts", "show", "bmc2", "--json"))["bmc"] is None
        again = server.run_remote("hosts", "bmc", "bmc2", "--remove", ok=False)
        assert again.startswith("Error: ") and "bmc2" in again and len(again.splitlines()) == 1


def test_a_viewer_token_gets_the_api_refusal(server: Server) -> None:
    out = server.run_remote("hosts", "add", "--mac", "52:54:00:00:50:01", "--hostname", "v1",
                            token=server.viewer, ok=False)  # fmt: skip
    assert out == (
        "Error: this API token's role is viewer, which may only read (GET, HEAD); "
        "POST needs a token with the admin role\n"
    )
    assert "v1" not in server.run_local("hosts", "list")
    # Reading is what a viewer may do.
    assert server.run_remote("hosts", "list", token=server.viewer) == server.run_local(
        "hosts", "list"
    )


def test_a_wrong_token_and_an_unreachable_server_are_one_line_each(server: Server) -> None:
    wrong = server.run_remote("pools", "list", token="xpa_not-a-token", ok=False)
    assert wrong.startswith(f"Error: {server.url} refused the API token (unknown or revoked")
    assert len(wrong.splitlines()) == 1

    closed = f"http://127.0.0.1:{closed_tcp_port()}"
    result = server.invoke(("events", "r1", "--server", closed),
                           {"XCP_PROVISION_TOKEN": server.admin})  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot reach the xcp-provision server at {closed}: connection refused\n"
    )
    missing = server.invoke(("audit", "--server", server.url), {})
    assert missing.exit_code == 1 and "no API token for" in missing.output
    assert len(missing.output.splitlines()) == 1


def test_a_command_without_an_api_equivalent_says_so(server: Server) -> None:
    out = server.run_remote("pools", "create", "pm", "--master", "r1", ok=False)
    assert "--master has no API equivalent yet" in out
    assert "pm" not in server.run_local("pools", "list")
    both = server.invoke(("hosts", "list", "--server", server.url, "--data-dir", server.data), {})
    assert both.exit_code == 2 and "give --server or --data-dir, not both" in both.output


def test_the_config_file_names_the_server_and_must_be_private(
    server: Server, tmp_path: Path
) -> None:
    config = tmp_path / "xcp-provision" / "cli.toml"
    config.parent.mkdir()
    config.write_text(f'server = "{server.url}"\ntoken = "{server.admin}"\n')
    os.chmod(config, 0o644)
    # XDG_CONFIG_HOME finds it: the command goes to the server with no option given.
    env: dict[str, str | None] = {"XCP_PROVISION_CLI_CONFIG": None,
                                  "XDG_CONFIG_HOME": str(tmp_path)}  # fmt: skip
    refused = server.invoke(("hosts", "list"), env)
    assert refused.exit_code == 1
    assert refused.output == (
        f"Error: {config} holds an API token but its mode 0644 lets other users open it; "
        f"run 'chmod 600 {config}' and try again\n"
    )
    os.chmod(config, 0o600)
    used = server.invoke(("hosts", "list", "--json"), env)
    assert used.exit_code == 0, used.output
    assert used.output == server.run_local("hosts", "list", "--json")
    made = server.invoke(("pools", "create", "from-file"), env)
    assert made.output == "created pool from-file\n"
    audit = json.loads(server.run_local("audit", "--json", "--limit", "5"))
    assert (audit[0]["actor"], audit[0]["action"]) == ("ops", "POST /api/v1/pools")
