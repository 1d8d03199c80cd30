"""The HTTP API through Flask's test client: admin CRUD, errors, the install flow, releases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from answerfiles.parse import parse_answerfile
from common import registration_key
from pxe.config import Settings
from pxe.store import hosts, profiles, tokens
from pxe.web.app import create_app
from pxe.web.openapi import PATHS
from tests.support.boot_script import answer_file_path, install_token

MAC = "52:54:00:12:34:56"


@pytest.fixture
def ready_host(client, auth) -> dict:
    response = client.post(
        "/api/v1/profiles",
        json={
            "name": "demo",
            "release": "demo",
            "template": "fresh-dhcp",
            "variables": {"timezone": "Europe/Paris"},
            "kernel_args": "nomodeset",
        },
        headers=auth,
    )
    assert response.status_code == 201, response.json
    response = client.post(
        "/api/v1/hosts", json={"mac": MAC, "hostname": "node1", "profile": "demo"}, headers=auth
    )
    assert response.status_code == 201, response.json
    return response.json


def _boot(client, mac: str = MAC) -> tuple[str, str, str]:
    """The iPXE script, the answer-file path and the install token it carries."""
    script = client.get(f"/boot/ipxe?mac={mac}").text
    path = answer_file_path(script)
    return script, path, install_token(path)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/hosts"), ("post", "/api/v1/hosts"), ("get", "/api/v1/pools"),
     ("get", "/api/v1/events"), ("delete", "/api/v1/profiles/x")],
)  # fmt: skip
def test_admin_api_needs_a_token(client, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert "Bearer" in response.json["error"]
    wrong = getattr(client, method)(path, headers={"Authorization": "Bearer xpa_wrong"})
    assert wrong.status_code == 401


def test_host_crud_and_errors(client, auth) -> None:
    bad = client.post("/api/v1/hosts", json={"mac": "52:54:00:zz:00:01"}, headers=auth)
    assert bad.status_code == 400 and "is not a MAC address" in bad.json["error"]
    assert client.post("/api/v1/hosts", data="[1]", headers=auth).status_code == 400
    created = client.post("/api/v1/hosts", json={"macs": [MAC.upper()]}, headers=auth)
    assert created.status_code == 201
    assert created.json["state"] == "discovered" and created.json["macs"] == [MAC]
    dup = client.post("/api/v1/hosts", json={"mac": MAC}, headers=auth)
    assert dup.status_code == 409 and "already belongs" in dup.json["error"]
    assert client.get("/api/v1/hosts/52-54-00-12-34-57", headers=auth).status_code == 404
    edited = client.patch(f"/api/v1/hosts/{MAC}", json={"hostname": "n1"}, headers=auth)
    assert edited.json["hostname"] == "n1"
    bad_edit = client.patch("/api/v1/hosts/n1", json={"colour": "red"}, headers=auth)
    assert bad_edit.status_code == 400
    missing_profile = client.patch("/api/v1/hosts/n1", json={"profile": "nope"}, headers=auth)
    assert missing_profile.status_code == 409  # the host is there; the profile it names is not
    assert client.get("/api/v1/hosts?state=sideways", headers=auth).status_code == 400
    assert client.get("/api/v1/hosts?limit=ten", headers=auth).status_code == 400
    listed = client.get("/api/v1/hosts?state=discovered", headers=auth).json["hosts"]
    assert [h["hostname"] for h in listed] == ["n1"]
    reinstall = client.post("/api/v1/hosts/n1/reinstall", headers=auth)
    assert reinstall.status_code == 409 and "no profile" in reinstall.json["error"]
    assert client.delete("/api/v1/hosts/n1", headers=auth).status_code == 204
    assert client.get("/api/v1/hosts/n1", headers=auth).status_code == 404


def test_profiles_selectors_pools_events(client, auth) -> None:
    assert client.post("/api/v1/pools", json={"name": "rack1"}, headers=auth).status_code == 201
    assert client.post("/api/v1/pools", json={"name": "rack1"}, headers=auth).status_code == 409
    assert client.post("/api/v1/pools", json={}, headers=auth).status_code == 400
    base = {"name": "base", "release": "demo", "template": "fresh-dhcp", "pool": "rack1"}
    assert client.post("/api/v1/profiles", json=base, headers=auth).status_code == 201
    child = client.post(
        "/api/v1/profiles",
        json={"name": "child", "parent": "base", "variables": {"keymap": "fr"}},
        headers=auth,
    )
    assert child.status_code == 201
    effective = client.get("/api/v1/profiles/child/effective", headers=auth).json
    assert effective["release"] == "demo" and effective["variables"] == {"keymap": "fr"}
    selector = client.post(
        "/api/v1/selectors",
        json={"profile": "child", "field": "mac", "pattern": "52:54:00:*"},
        headers=auth,
    )
    assert selector.status_code == 201
    client.get(f"/boot/ipxe?mac={MAC}")
    host = client.get(f"/api/v1/hosts/{MAC}", headers=auth).json
    assert (host["state"], host["profile"]) == ("ready", "child")
    pool = client.get("/api/v1/pools/rack1", headers=auth).json
    assert pool["name"] == "rack1" and pool["members"] == []
    assert client.get("/api/v1/pools/rack9", headers=auth).status_code == 404
    events = client.get(f"/api/v1/events?host={MAC}", headers=auth).json["events"]
    assert [e["kind"] for e in events] == ["state", "discovered", "state"]
    assert client.get("/api/v1/events?since=yesterday", headers=auth).status_code == 400
    sid = selector.json["id"]
    assert client.delete(f"/api/v1/selectors/{sid}", headers=auth).status_code == 204
    assert client.delete("/api/v1/profiles/base", headers=auth).status_code == 409


@pytest.mark.parametrize("kind", ["profiles", "pools"])
def test_a_deleted_name_does_not_reach_the_row_with_that_id(client, auth, kind: str) -> None:
    """Found by Schemathesis: ``/profiles/05`` still answered after profile "05" was deleted,
    with the profile whose id is 5. A resource's path is its name only."""
    first = client.post(f"/api/v1/{kind}", json={"name": "first"}, headers=auth).get_json()
    assert client.post(f"/api/v1/{kind}", json={"name": str(first["id"])},
                       headers=auth).status_code == 201  # fmt: skip
    path = f"/api/v1/{kind}/{first['id']}"
    assert client.get(path, headers=auth).get_json()["name"] == str(first["id"])
    assert client.delete(path, headers=auth).status_code == 204
    assert client.get(path, headers=auth).status_code == 404
    assert client.delete(path, headers=auth).status_code == 404
    assert client.get(f"/api/v1/{kind}/first", headers=auth).status_code == 200


def test_install_flow_and_build_done_replay(client, auth, ready_host) -> None:
    script, path, token = _boot(client)
    assert script.startswith("#!ipxe\n")
    assert "kernel http://pxe.test:8080/releases/demo/installer-vmlinuz install " in script
    assert "console=ttyS0,115200 console=tty0 nomodeset atexit=reboot" in script
    answer = client.get(path)
    assert answer.status_code == 200 and answer.mimetype == "application/xml"
    parsed = parse_answerfile(answer.text)
    assert parsed is not None
    assert "<hostname>node1</hostname>" in answer.text
    assert "<timezone>Europe/Paris</timezone>" in answer.text
    assert f"<xp:token>{token}</xp:token>" in answer.text
    assert '<source type="url">http://pxe.test:8080/releases/demo/</source>' in answer.text
    host_auth = {"Authorization": f"Bearer {token}"}
    progress = client.post(
        "/api/v1/installs/events",
        json={"step": "partition", "percent": 20, "message": "sda"},
        headers=host_auth,
    )
    assert progress.status_code == 202 and progress.json["state"] == "installing"
    bad = client.post(
        "/api/v1/installs/events", json={"step": "x", "percent": 120}, headers=host_auth
    )
    assert bad.status_code == 400
    assert client.post("/api/v1/installs/done", headers=host_auth).json["state"] == "installed"
    replay = client.post("/api/v1/installs/done", headers=host_auth)
    assert replay.status_code == 409 and "already reported build-done" in replay.json["error"]
    late = client.post("/api/v1/installs/events", json={"step": "x"}, headers=host_auth)
    assert late.status_code == 409
    assert "sanboot" in client.get(f"/boot/ipxe?mac={MAC}").text
    events = client.get("/api/v1/hosts/node1/events", headers=auth).json["events"]
    assert [(e["kind"], e["step"], e["percent"]) for e in events][-3:] == [
        ("state", "", None),
        ("progress", "partition", 20),
        ("done", "", None),
    ]
    again = client.post("/api/v1/hosts/node1/reinstall", headers=auth)
    assert again.json["state"] == "ready"
    assert client.post("/api/v1/installs/done", headers=host_auth).status_code == 403


@pytest.mark.parametrize(
    "bad", ["A" * 64, "0" * 63, "0" * 65, "g" * 64, "0" * 64 + "\n", "", 64, ["0" * 64]]
)
def test_build_done_names_a_malformed_registration_key_hash(client, ready_host, bad) -> None:
    _, path, token = _boot(client)
    host_auth = {"Authorization": f"Bearer {token}"}
    assert client.get(path).status_code == 200
    done = client.post(
        "/api/v1/installs/done", json={registration_key.DIGEST_FIELD: bad}, headers=host_auth
    )
    assert done.status_code == 400
    assert f"'{registration_key.DIGEST_FIELD}' must be a sha256" in done.json["error"]


def test_build_done_keeps_the_registration_key_hash_for_one_cycle(
    client, auth, database, ready_host
) -> None:
    _, path, token = _boot(client)
    host_auth = {"Authorization": f"Bearer {token}"}
    assert client.get(path).status_code == 200
    digest = registration_key.digest("the key the installer left")
    done = client.post(
        "/api/v1/installs/done", json={registration_key.DIGEST_FIELD: digest}, headers=host_auth
    )
    assert done.status_code == 200
    with database.scope(write=False) as session:
        assert hosts.get_host(session, MAC).registration_key_hash == digest
    assert client.post("/api/v1/hosts/node1/reinstall", headers=auth).status_code == 200
    with database.scope(write=False) as session:
        assert hosts.get_host(session, MAC).registration_key_hash is None


def test_answer_file_tokens(client, ready_host) -> None:
    _, path, token = _boot(client)
    bare = path.split("?")[0]
    assert client.get(bare).status_code == 401
    assert client.get(bare + "?token=xpi_forged").status_code == 403
    assert client.get("/answerfile/999?token=" + token).status_code == 404
    _, newer_path, _ = _boot(client)  # the host booted again: the old token is replaced
    assert client.get(path).status_code == 403
    assert client.get(newer_path).status_code == 200
    assert client.get(newer_path.replace("/answerfile/1", f"/answerfile/{MAC}")).status_code == 200


def test_invalid_template_output_is_refused_not_served(client, auth, ready_host) -> None:
    client.patch(
        "/api/v1/profiles/demo", json={"variables": {"root_password_hash": "plain"}}, headers=auth
    )
    _, path, _ = _boot(client)
    response = client.get(path)
    assert response.status_code == 500
    assert "root-password" in response.json["error"]
    events = client.get("/api/v1/hosts/node1/events", headers=auth).json["events"]
    assert events[-1]["kind"] == "answerfile"


def test_host_calls_need_an_install_token(client) -> None:
    assert client.post("/api/v1/installs/done").status_code == 401
    forged = {"Authorization": "Bearer xpi_forged"}
    assert client.post("/api/v1/installs/done", headers=forged).status_code == 403


def test_failure_report_keeps_the_end_of_a_capped_log(tmp_path: Path, database, demo_release):
    settings = Settings(
        data_dir=demo_release.parent.parent, public_url="http://pxe.test:8080", max_log_bytes=1000
    )
    client = create_app(settings, database=database).test_client()
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        host = hosts.add_host(s, macs=[MAC], profile="p")
        token = tokens.issue_install_token(host)
    log = "x" * 5000 + "FATAL: no disk"
    response = client.post(
        "/api/v1/installs/failed",
        json={"reason": "no target disk", "log": log},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202
    assert response.json == {"state": "failed", "log_bytes": 1000, "truncated": True}
    with database.scope() as s:
        host = hosts.get_host(s, MAC)
        assert host.failure_log.endswith("FATAL: no disk") and len(host.failure_log) == 1000
        assert host.state_reason == "no target disk"


def test_release_files_range_etag_and_traversal(client, demo_release: Path) -> None:
    data = (demo_release / "installer-vmlinuz").read_bytes()
    full = client.get("/releases/demo/installer-vmlinuz")
    assert full.status_code == 200 and full.data == data
    etag = full.headers["ETag"]
    part = client.get("/releases/demo/installer-vmlinuz", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.data == data[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(data)}"
    cached = client.get("/releases/demo/installer-vmlinuz", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert client.get("/releases/demo/").json["name"] == "demo"
    (demo_release / "escape").symlink_to("/etc/passwd")
    assert client.get("/releases/demo/escape").status_code == 404
    assert client.get("/releases/demo/../../inventory.sqlite3").status_code == 404
    assert client.get("/releases/demo/nothing").status_code == 404


def test_openapi_lists_every_api_route(app, client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    listed = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in listed, f"{method} {path} is not in openapi.json"
    assert set(PATHS) <= set(spec["paths"])


def test_healthz(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
