"""Token roles (admin, viewer) and the audit log, through the real CLI, the Flask app and the
database: what a viewer may do, what every change leaves behind, and that no secret does."""

from __future__ import annotations

import json
import os
import pwd
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, text

from pxe.config import Settings
from pxe.db.migrate import downgrade, upgrade
from pxe.db.models import ApiToken
from pxe.db.session import Database, close_databases
from pxe.web.app import create_app
from xcp_provision.main import main

SECRET = "Hunter2-s3cret-P@ssw0rd"  # what must never reach the audit
ME = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def _run(*args: str, ok: bool = True) -> str:
    # Wide enough for rich to print each table cell on one line.
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def _token(data: str, name: str, *role: str) -> str:
    return _run("tokens", "create", name, *role, "--data-dir", data).strip().splitlines()[-1]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_viewer_token_reads_and_is_refused_every_change(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    admin = _bearer(_token(data, "ops"))
    viewer = _bearer(_token(data, "look", "--role", "viewer"))
    listed = {
        t["name"]: t["role"]
        for t in json.loads(_run("tokens", "list", "--data-dir", data, "--json"))
    }
    assert listed == {"ops": "admin", "look": "viewer"}
    table = _run("tokens", "list", "--data-dir", data)
    assert "role" in table and "viewer" in table and "admin" in table
    assert "not one of" in _run(
        "tokens", "create", "x", "--role", "root", "--data-dir", data, ok=False
    )

    client = create_app(Settings(data_dir=Path(data))).test_client()
    assert client.post("/api/v1/pools", json={"name": "rack1"}, headers=admin).status_code == 201
    assert client.get("/api/v1/pools", headers=viewer).json["pools"][0]["name"] == "rack1"
    assert client.get("/api/v1/pools/rack1", headers=viewer).status_code == 200
    assert client.head("/api/v1/hosts", headers=viewer).status_code == 200
    refused = [
        client.post("/api/v1/pools", json={"name": "rack2"}, headers=viewer),
        client.delete("/api/v1/pools/rack1", headers=viewer),
        client.post("/api/v1/hosts", json={"mac": "52:54:00:00:00:09"}, headers=viewer),
        client.patch("/api/v1/profiles/none", json={"release": "x"}, headers=viewer),
    ]
    for response in refused:
        assert response.status_code == 403, response.json
        assert "role is viewer" in response.json["error"]
    assert [p["name"] for p in client.get("/api/v1/pools", headers=admin).json["pools"]] == [
        "rack1"
    ]
    assert client.get("/api/v1/hosts", headers=admin).json == {"hosts": []}
    close_databases()


def test_tokens_made_before_roles_are_admins(database: Database) -> None:
    downgrade(database.engine, "0001")
    with database.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO api_tokens (name, hash, created_at) VALUES ('old', :h, :t)"),
            {"h": "0" * 64, "t": datetime.now(UTC)},
        )
    upgrade(database.engine)
    with database.engine.connect() as conn:
        assert conn.execute(select(ApiToken.__table__.c.role)).scalar_one() == "admin"


def test_api_changes_are_audited_without_secrets(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    admin = _bearer(_token(data, "ops"))
    viewer = _bearer(_token(data, "look", "--role", "viewer"))
    client = create_app(Settings(data_dir=Path(data))).test_client()
    body = {"name": "base", "release": "demo", "variables": {"root_password": SECRET}}
    assert client.post("/api/v1/profiles", json=body, headers=admin).status_code == 201
    # A wrong type: the error sentence quotes the value; the audit must not.
    bad = client.patch(
        "/api/v1/profiles/base", json={"variables": SECRET, "template": 1}, headers=admin
    )
    assert bad.status_code == 400 and SECRET[:10] in bad.json["error"]
    assert client.post("/api/v1/hosts/nobody/reinstall", headers=admin).status_code == 404
    denied = client.patch(
        "/api/v1/profiles/base", json={"variables": {"pw": SECRET}}, headers=viewer
    )
    assert denied.status_code == 403
    assert client.get("/api/v1/hosts", headers=admin).status_code == 200  # reads are not audited

    listed = client.get("/api/v1/audit", headers=viewer)
    assert listed.status_code == 200
    rows = listed.json["audit"]
    assert [(r["actor"], r["action"], r["target"], r["result"][:3]) for r in rows] == [
        ("look", "PATCH /api/v1/profiles/<name>", "base", "403"),
        ("ops", "POST /api/v1/hosts/<ref>/reinstall", "nobody", "404"),
        ("ops", "PATCH /api/v1/profiles/<name>", "base", "400"),
        ("ops", "POST /api/v1/profiles", "base", "ok"),
        (ME, "tokens.create", "look", "ok"),
        (ME, "tokens.create", "ops", "ok"),
    ]
    assert rows[0]["result"].startswith("403 this API token's role is viewer")
    assert rows[1]["result"] == "404 no host 'nobody'"
    assert rows[2]["fields"] == ["template", "variables"]
    assert rows[3]["fields"] == ["name", "release", "variables"]
    assert {r["source"] for r in rows[:4]} == {"127.0.0.1"} and rows[4]["source"] == ""
    assert all(
        datetime.fromisoformat(r["time"]) > datetime.now(UTC) - timedelta(minutes=5) for r in rows
    )

    cli_json = _run("audit", "--data-dir", data, "--json")
    cli_table = _run("audit", "--since", "1h", "--data-dir", data)
    assert [r["id"] for r in json.loads(cli_json)] == [r["id"] for r in rows]
    assert "PATCH /api/v1/profiles/<name>" in cli_table and "look" in cli_table
    with Database(Settings(data_dir=Path(data)).database).engine.connect() as conn:
        stored = json.dumps(
            [list(r) for r in conn.execute(text("SELECT * FROM audit"))], default=str
        )
    for shown in (listed.get_data(as_text=True), cli_json, cli_table, stored):
        assert SECRET[:8] not in shown
        assert "xpa_" not in shown

    # since and limit, on the API and the CLI.
    assert len(client.get("/api/v1/audit?limit=2", headers=viewer).json["audit"]) == 2
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get(
        f"/api/v1/audit?since={later.replace('+00:00', 'Z')}", headers=viewer
    ).json == {"audit": []}
    assert client.get("/api/v1/audit?since=yesterday", headers=viewer).status_code == 400
    longest = client.get("/api/v1/audit?since=99999w", headers=viewer)  # still after the year 1
    assert longest.status_code == 200 and longest.json["audit"]
    too_long = client.get("/api/v1/audit?since=754945d", headers=viewer)
    assert too_long.status_code == 400 and "five digits" in too_long.json["error"]
    assert json.loads(_run("audit", "--since", "5m", "--data-dir", data, "--json"))
    assert "--since" in _run("audit", "--since", "soon", "--data-dir", data, ok=False)
    close_databases()


def test_cli_changes_are_audited_in_their_transaction(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    common = ("--data-dir", data)
    made = _run("tokens", "create", "robot", "--role", "viewer", *common).strip().splitlines()[-1]
    _run(
        "profiles",
        "create",
        "rack",
        "--release",
        "demo",
        "--var",
        f"root_password={SECRET}",
        *common,
    )
    _run("pools", "create", "rack1", *common)
    _run(
        "hosts",
        "add",
        "--mac",
        "52:54:00:00:00:01",
        "--hostname",
        "n1",
        "--profile",
        "rack",
        *common,
    )
    _run("hosts", "reinstall", "n1", *common)
    _run("profiles", "edit", "rack", "--var", f"pw={SECRET}", "--release", "nope", *common)
    assert "no profile 'gone'" in _run("profiles", "delete", "gone", *common, ok=False)
    assert "exists" in _run("tokens", "create", "robot", *common, ok=False)
    _run("tokens", "revoke", "robot", *common)

    rows = json.loads(_run("audit", "--json", *common))
    assert [(r["actor"], r["action"], r["target"], r["result"]) for r in reversed(rows)] == [
        (ME, "tokens.create", "robot", "ok"),
        (ME, "profiles.create", "rack", "ok"),
        (ME, "pools.create", "rack1", "ok"),
        (ME, "hosts.add", "n1", "ok"),
        (ME, "hosts.reinstall", "n1", "ok"),
        (ME, "profiles.edit", "rack", "ok"),
        (ME, "profiles.delete", "gone", "404 no profile 'gone'"),
        (
            ME,
            "tokens.create",
            "robot",
            "409 an API token named 'robot' exists; revoke it first or pick another name",
        ),
        (ME, "tokens.revoke", "robot", "ok"),
    ]
    assert rows[-2]["fields"] == ["release", "variables"]
    assert rows[-1]["fields"] == ["role"]
    assert {r["source"] for r in rows} == {""}
    shown = json.dumps(rows) + _run("audit", *common)
    assert SECRET[:8] not in shown and made not in shown and "xpa_" not in shown
    close_databases()


def test_openapi_says_which_operations_need_admin(client) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert "/api/v1/audit" in paths
    audit = paths["/api/v1/audit"]["get"]
    assert audit["x-required-role"] == "viewer"
    assert {p["name"] for p in audit["parameters"]} == {"since", "limit"}
    for path, item in paths.items():
        for method, op in item.items():
            if method == "parameters" or op["security"] != [{"apiToken": []}]:
                continue
            if method == "get":
                assert op["x-required-role"] == "viewer", path
                assert "403" not in op["responses"], path
            else:
                assert op["x-required-role"] == "admin", (method, path)
                assert "admin role" in op["description"], (method, path)
                assert "viewer" in op["responses"]["403"]["description"], (method, path)
    assert "x-required-role" not in paths["/api/v1/register"]["post"]
