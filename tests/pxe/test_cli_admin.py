"""Admin commands on a local data directory, checked against the inventory and the API."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pxe.config import Settings
from pxe.db.session import close_databases
from pxe.web.app import create_app
from xcp_provision.main import main


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_token_from_the_cli_opens_the_api(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    output = _run("tokens", "create", "ops", "--data-dir", data)
    token = output.strip().splitlines()[-1]
    assert token.startswith("xpa_")
    names = json.loads(_run("tokens", "list", "--data-dir", data, "--json"))
    assert [n["name"] for n in names] == ["ops"]
    client = create_app(Settings(data_dir=Path(data))).test_client()
    assert client.get("/api/v1/hosts", headers={"Authorization": f"Bearer {token}"}).json == {
        "hosts": []
    }
    _run("tokens", "revoke", "ops", "--data-dir", data)
    assert (
        client.get("/api/v1/hosts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    close_databases()


def test_hosts_profiles_events(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    common = ("--data-dir", data)
    _run("profiles", "create", "base", "--release", "demo", "--template", "fresh-dhcp",
         "--var", "timezone=Europe/Paris", "--var", "ntp=[\"ntp1\"]", *common)  # fmt: skip
    _run("profiles", "create", "rack", "--parent", "base", "--kernel-args", "nomodeset", *common)
    _run("profiles", "select", "rack", "serial", "RACK-*", *common)
    shown = json.loads(_run("profiles", "show", "rack", "--json", *common))
    assert shown["effective"]["variables"] == {"timezone": "Europe/Paris", "ntp": ["ntp1"]}
    assert shown["selectors"][0]["pattern"] == "rack-*"
    added = json.loads(
        _run(
            "hosts",
            "add",
            "--mac",
            "52-54-00-00-00-01",
            "--mac",
            "52:54:00:00:00:02",
            "--hostname",
            "n1",
            "--profile",
            "rack",
            "--json",
            *common,
        )
    )
    assert added["state"] == "ready" and added["macs"] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    table = _run("hosts", "list", *common)
    assert "n1" in table and "ready" in table and "rack" in table
    assert json.loads(_run("hosts", "list", "--state", "installed", "--json", *common)) == []
    detail = json.loads(_run("hosts", "show", "52:54:00:00:00:02", "--json", *common))
    assert detail["hostname"] == "n1" and detail["events"][0]["message"] == "added as ready"
    events = json.loads(_run("events", "n1", "--json", *common))
    assert [e["kind"] for e in events] == ["state"]
    found = json.loads(_run("hosts", "add", "--serial", "RACK-9", "--json", *common))
    assert found["state"] == "discovered"
    assigned = json.loads(
        _run(
            "hosts",
            "edit",
            str(found["id"]),
            "--profile",
            "base",
            "--hostname",
            "n2",
            "--json",
            *common,
        )
    )
    assert (assigned["state"], assigned["hostname"], assigned["profile"]) == ("ready", "n2", "base")
    _run("hosts", "reinstall", "n1", *common)
    assert json.loads(_run("hosts", "remove", "n1", "--json", *common)) == {"removed": 1}
    close_databases()


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    result = CliRunner().invoke(main, ["hosts", "add", "--mac", "zz", "--data-dir", data])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: 'zz' is not a MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)"
    )
    result = CliRunner().invoke(main, ["hosts", "show", "nobody", "--data-dir", data])
    assert result.exit_code == 1 and "no host 'nobody'" in result.output
    result = CliRunner().invoke(main, ["hosts", "list", "--state", "odd", "--data-dir", data])
    assert result.exit_code == 2 and "unknown state 'odd'" in result.output
    close_databases()
