"""``xcp-provision pools list|create|show`` on a data directory hosts registered into."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pxe.config import Settings
from pxe.db.session import close_databases, open_database
from pxe.registration import register
from tests.support.registering import facts, installed_host
from xcp_provision.main import main


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    close_databases()


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_create_register_show(data_dir: Path) -> None:
    created = json.loads(_run("pools", "create", "rack1", "--data-dir", str(data_dir), "--json"))
    assert (created["name"], created["force"], created["master"]) == ("rack1", False, None)
    database = open_database(Settings(data_dir=data_dir))
    for number in (1, 2):
        register(database, installed_host(database, number, pool="rack1"), facts(number))
    register(
        database, installed_host(database, 3, pool="rack1"), facts(3, network_backend="bridge")
    )
    installed_host(database, 4, pool="rack1", hostname="late")

    shown = json.loads(_run("pools", "show", "rack1", "--data-dir", str(data_dir), "--json"))
    assert shown["master"] == "node0001"
    assert shown["master_address"] == "192.0.2.1"
    assert [(m["hostname"], m["role"], m["state"]) for m in shown["members"]] == [
        ("node0001", "master", "in-pool"),
        ("node0002", "member", "in-pool"),
    ]
    assert [(r["hostname"], r["reasons"]) for r in shown["refused"]] == [
        ("node0003", ["Network backend bridge differs from the master's openvswitch."])
    ]
    assert [(p["hostname"], p["state"]) for p in shown["pending"]] == [("late", "installed")]
    assert "secret" not in json.dumps(shown)

    table = _run("pools", "show", "rack1", "--data-dir", str(data_dir))
    for word in ("node0001", "node0002", "master", "member", "node0003", "bridge", "late"):
        assert word in table

    listed = json.loads(_run("pools", "list", "--data-dir", str(data_dir), "--json"))
    assert [(p["name"], len(p["members"]), len(p["refused"])) for p in listed["pools"]] == [
        ("rack1", 2, 1)
    ]
    assert "rack1" in _run("pools", "list", "--data-dir", str(data_dir))


def test_errors_are_one_sentence(data_dir: Path) -> None:
    _run("pools", "create", "rack1", "--force", "--data-dir", str(data_dir))
    again = CliRunner().invoke(main, ["pools", "create", "rack1", "--data-dir", str(data_dir)])
    assert again.exit_code == 1
    assert "a pool named 'rack1' exists" in again.output
    missing = CliRunner().invoke(main, ["pools", "show", "nope", "--data-dir", str(data_dir)])
    assert missing.exit_code == 1
    assert "no pool 'nope'" in missing.output
    bad = CliRunner().invoke(main, ["pools", "create", "bad name", "--data-dir", str(data_dir)])
    assert bad.exit_code == 1
    assert "pool name 'bad name' is not valid" in bad.output


def test_create_with_a_named_master(data_dir: Path) -> None:
    database = open_database(Settings(data_dir=data_dir))
    member = installed_host(database, 2)
    master = installed_host(database, 1, hostname="boss")
    created = json.loads(
        _run("pools", "create", "rack2", "--master", "boss", "--data-dir", str(data_dir), "--json")
    )
    assert created["master"] == "boss"
    assert register(database, member, facts(2, pool="rack2")).retry_after == 30
    assert register(database, master, facts(1)).role == "master"
    assert register(database, member, facts(2, pool="rack2")).role == "member"
    taken = CliRunner().invoke(
        main, ["pools", "create", "rack3", "--master", "boss", "--data-dir", str(data_dir)]
    )
    assert taken.exit_code == 1
    assert "host boss is already in pool rack2" in taken.output
