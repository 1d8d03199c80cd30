"""BMCs and power through the REST API and the CLI, against a real IPMI BMC (ipmi_sim):
the password never comes back and is not in the database in clear, failures are 502s that
change nothing, every action is an event naming who asked."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from support.bmc_sim import IpmiSim, free_udp_port

from common import wire
from pxe.bmc.crypto import KEY_FILE
from pxe.config import Settings
from pxe.db.models import Bmc
from pxe.db.session import Database, close_databases
from pxe.store import hosts as host_store
from pxe.store.lifecycle import State
from pxe.store.profiles import create_profile
from pxe.store.tokens import VIEWER, create_api_token, issue_install_token
from pxe.web.app import create_app
from xcp_provision.main import main

pytestmark = pytest.mark.usefixtures("fresh_bmc_cache")

@pytest.fixture
def bmc_settings(settings: Settings) -> Settings:
    return settings.replace(bmc_timeout=3, bmc_status_cache_seconds=60)



@pytest.fixture
def api(bmc_settings: Settings, database: Database):
    return create_app(bmc_settings, database=database).test_client()


@pytest.fixture
def installed_host(database: Database) -> int:
    with database.scope() as session:
        create_profile(session, "base", release="demo", template="fresh-dhcp")
        host = host_store.add_host(
            session, macs=["52:54:00:cc:00:01"], hostname="web01", profile="base"
        )
        host_store.set_state(session, host, State.INSTALLING)
        host_store.set_state(session, host, State.INSTALLED)
        return host.id


def _put(api, auth, sim: IpmiSim, password: str | None, port: int | None = None):
    body = {"driver": "ipmi", "address": "127.0.0.1", "port": port or sim.port}
    body["username"] = sim.username
    if password is not None:
        body["password"] = password
    return api.put("/api/v1/hosts/web01/bmc", json=body, headers=auth)


def test_bmc_password_is_never_shown_nor_stored_in_clear(
    api, auth, sim: IpmiSim, installed_host: int, bmc_settings: Settings,
    database: Database,
) -> None:  # fmt: skip
    put = _put(api, auth, sim, sim.password)
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["driver"] == "ipmi" and "password" not in put.get_json()
    shown = api.get("/api/v1/hosts/web01", headers=auth)
    assert shown.get_json()["bmc"]["username"] == sim.username
    assert "password" not in shown.get_json()["bmc"]
    reads = ("", "/bmc", "/events", "/power")
    paths = [f"/api/v1/hosts/web01{p}" for p in reads]
    for path in [*paths, "/api/v1/hosts", "/api/v1/audit", "/api/v1/openapi.json"]:
        reply = api.get(path, headers=auth)
        assert reply.status_code == 200, path
        assert sim.password not in reply.get_data(as_text=True), path

    database.dispose()  # every write checkpointed or not, the files hold what is stored
    stored = b"".join(p.read_bytes() for p in bmc_settings.data_dir.glob("inventory.sqlite3*"))
    assert sim.username.encode() in stored  # the row is there...
    assert sim.password.encode() not in stored  # ...but not its password
    key = bmc_settings.data_dir / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with database.scope(write=False) as session:
        token = session.get(Bmc, installed_host).password_encrypted
    assert Fernet(key.read_bytes().strip()).decrypt(token.encode()).decode() == sim.password


def test_bmc_input_is_checked(api, auth, sim: IpmiSim, installed_host: int) -> None:
    assert _put(api, auth, sim, None).status_code == 400  # a new BMC needs its password
    too_long = "x" * 21
    refused = _put(api, auth, sim, too_long)
    assert refused.status_code == 400
    assert too_long not in refused.get_data(as_text=True)
    odd = api.put(
        "/api/v1/hosts/web01/bmc",
        json={"driver": "smoke", "address": "a", "username": "u", "password": "p"},
        headers=auth,
    )
    assert odd.status_code == 400 and "ipmi, redfish" in odd.get_json()["error"]
    typed = api.put(
        "/api/v1/hosts/web01/bmc",
        json={"driver": "ipmi", "address": "a", "username": "u", "password": 123456},
        headers=auth,
    )
    assert typed.status_code == 400 and "123456" not in typed.get_data(as_text=True)
    # Changing the address keeps the stored password.
    assert _put(api, auth, sim, sim.password).status_code == 200
    assert _put(api, auth, sim, None).status_code == 200
    assert (
        api.post("/api/v1/hosts/web01/power", json={"action": "on"}, headers=auth).status_code
        == 202
    )


def test_power_actions_and_status(
    api, auth, sim: IpmiSim, installed_host: int, database: Database
) -> None:
    assert api.get("/api/v1/hosts/web01/power", headers=auth).status_code == 409  # no BMC
    assert _put(api, auth, sim, sim.password).status_code == 200
    status = api.get("/api/v1/hosts/web01/power", headers=auth)
    assert status.get_json()["power"] == "off"

    on = api.post("/api/v1/hosts/web01/power", json={"action": "on"}, headers=auth)
    assert on.status_code == 202
    assert on.get_json() == {"host": "web01", "action": "on", "requested_by": "tests"}
    assert sim.power() == "on"
    again = api.get("/api/v1/hosts/web01/power", headers=auth).get_json()
    assert again["power"] == "on"
    assert api.get("/api/v1/hosts/web01/power", headers=auth).get_json()["cached"] is True

    bad = api.post("/api/v1/hosts/web01/power", json={"action": "explode"}, headers=auth)
    assert bad.status_code == 400

    with database.scope() as session:
        viewer = create_api_token(session, "watcher", VIEWER)
    watcher = {"Authorization": f"Bearer {viewer}"}
    assert api.get("/api/v1/hosts/web01/power", headers=watcher).status_code == 200
    denied = api.post("/api/v1/hosts/web01/power", json={"action": "off"}, headers=watcher)
    assert denied.status_code == 403
    assert sim.power() == "on"

    events = api.get("/api/v1/hosts/web01/events", headers=auth).get_json()["events"]
    power = [e for e in events if e["kind"] == "power"]
    assert [e["step"] for e in power] == ["on"] and "tests" in power[0]["message"]


def test_reinstall_with_power_failing_bmc_leaves_the_host_as_it_was(
    api, auth, sim: IpmiSim, installed_host: int
) -> None:
    assert _put(api, auth, sim, "not-the-password").status_code == 200
    before = api.get("/api/v1/hosts/web01", headers=auth).get_json()
    reply = api.post("/api/v1/hosts/web01/reinstall", json={"power": True}, headers=auth)
    assert reply.status_code == 502
    error = reply.get_json()["error"]
    assert error.startswith("host web01: BMC ipmi admin@127.0.0.1:")
    assert "refused the credentials" in error and "not-the-password" not in error
    after = api.get("/api/v1/hosts/web01", headers=auth).get_json()
    assert (after["state"], after["updated_at"]) == (before["state"], before["updated_at"])
    assert (sim.boot(), sim.resets(), sim.power()) == ("", 0, "off")
    events = api.get("/api/v1/hosts/web01/events", headers=auth).get_json()["events"]
    assert [e["kind"] for e in events][-1] == "power-failed"
    assert "tests" in events[-1]["message"]


def test_reinstall_with_power_and_without(
    api, auth, sim: IpmiSim, installed_host: int
) -> None:
    assert _put(api, auth, sim, sim.password).status_code == 200
    reply = api.post("/api/v1/hosts/web01/reinstall", json={"power": True}, headers=auth)
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["state"] == "ready"
    assert (sim.boot(), sim.power()) == ("pxe", "on")  # it was off: powered on
    plain = api.post("/api/v1/hosts/web01/reinstall", headers=auth)
    assert plain.status_code == 200
    odd = api.post("/api/v1/hosts/web01/reinstall", json={"power": "yes"}, headers=auth)
    assert odd.status_code == 400


def test_a_bmc_that_does_not_answer_is_a_502_within_the_bound(
    api, auth, sim: IpmiSim, installed_host: int, bmc_settings: Settings
) -> None:
    port = free_udp_port()
    assert _put(api, auth, sim, "whatever", port=port).status_code == 200
    started = time.monotonic()
    reply = api.post("/api/v1/hosts/web01/power", json={"action": "cycle"}, headers=auth)
    assert time.monotonic() - started < bmc_settings.bmc_timeout + 1.5
    assert reply.status_code == 502
    assert "did not answer (power cycle)" in reply.get_json()["error"]


def test_openapi_describes_bmc_and_power(api, auth) -> None:
    spec = api.get("/api/v1/openapi.json").get_json()
    assert {"get", "put", "delete"} <= set(spec["paths"]["/api/v1/hosts/{ref}/bmc"])
    power = spec["paths"]["/api/v1/hosts/{ref}/power"]
    assert "202" in power["post"]["responses"] and "502" in power["post"]["responses"]
    reinstall = spec["paths"]["/api/v1/hosts/{ref}/reinstall"]["post"]
    assert reinstall["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReinstallInput"
    }
    assert "password" not in spec["components"]["schemas"]["Bmc"]["properties"]


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_bmc_power_and_reinstall(tmp_path: Path, sim: IpmiSim) -> None:
    data = ("--data-dir", str(tmp_path / "cli-data"))
    try:
        _cli("profiles", "create", "base", "--release", "demo", "--template", "fresh-dhcp", *data)
        _cli("hosts", "add", "--mac", "52:54:00:dd:00:01", "--hostname", "n1", "--profile",
             "base", *data)  # fmt: skip
        secret = tmp_path / "bmc-password"
        secret.write_text(sim.password + "\n")
        _cli("hosts", "bmc", "n1", "--driver", "ipmi", "--address", "127.0.0.1", "--port",
             str(sim.port), "--username", sim.username, "--password-file", str(secret),
             *data)  # fmt: skip
        shown = _cli("hosts", "show", "n1", "--json", *data)
        assert json.loads(shown)["bmc"]["port"] == sim.port
        assert sim.password not in shown
        assert json.loads(_cli("hosts", "power", "n1", "status", "--json", *data))["power"] == "off"
        _cli("hosts", "power", "n1", "on", *data)
        assert sim.power() == "on"
        events = json.loads(_cli("hosts", "show", "n1", "--json", *data))["events"]
        assert any(e["kind"] == "power" and "cli:" in e["message"] for e in events)

        secret.write_text("wrong-one\n")
        _cli("hosts", "bmc", "n1", "--driver", "ipmi", "--address", "127.0.0.1", "--port",
             str(sim.port), "--username", sim.username, "--password-file", str(secret),
             *data)  # fmt: skip
        failed = _cli("hosts", "reinstall", "n1", "--power", *data, code=1)
        assert "host n1: BMC ipmi admin@127.0.0.1" in failed
        assert "refused the credentials" in failed and "wrong-one" not in failed
        assert json.loads(_cli("hosts", "show", "n1", "--json", *data))["state"] == "ready"
        assert (sim.boot(), sim.resets()) == ("", 0)
        missing = _cli("hosts", "bmc", "n1", "--driver", "ipmi", *data, code=2)
        assert "--username" in missing
    finally:
        close_databases()


def test_dashboard_host_page_shows_the_bmc_without_its_password(
    api, auth, api_token: str, sim: IpmiSim, installed_host: int
) -> None:
    assert _put(api, auth, sim, sim.password).status_code == 200
    form = api.get("/ui/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    api.post("/ui/login", data={"csrf": csrf, "token": api_token, "next": ""})
    page = api.get(f"/ui/hosts/{installed_host}").get_data(as_text=True)
    section = page[page.index('id="bmc"') :]
    assert f"127.0.0.1:{sim.port}" in section and sim.username in section
    assert sim.password not in page


def test_the_bmc_its_installer_saw_is_assigned_in_one_step(
    api, auth, sim: IpmiSim, database: Database
) -> None:
    with database.scope() as session:
        create_profile(session, "base", release="demo", template="fresh-dhcp")
        host = host_store.add_host(
            session, macs=["52:54:00:cc:00:02"], hostname="web02", profile="base"
        )
        token = issue_install_token(host)
    body = {"driver": "ipmi", "port": sim.port, "username": sim.username,
            "password": sim.password}  # fmt: skip
    unknown = api.put("/api/v1/hosts/web02/bmc", json=body, headers=auth)
    assert unknown.status_code == 400
    assert "installer has not reported one" in unknown.get_json()["error"]

    installer = {"Authorization": f"Bearer {token}"}
    seen = {"address": "127.0.0.1", "source": "static", "mac": "52:54:00:AA:BB:CC", "channel": 1}
    odd = {**seen, "address": "bmc.example"}
    refused = api.post(wire.INSTALL_EVENTS, json={"step": "prepare", "bmc": odd},
                       headers=installer)  # fmt: skip
    assert refused.status_code == 400 and "'bmc.address'" in refused.get_json()["error"]
    reported = api.post(wire.INSTALL_EVENTS, json={"step": "prepare", "percent": 1,
                        "message": "BMC seen", "bmc": seen}, headers=installer)  # fmt: skip
    assert reported.status_code == 202, reported.get_json()
    facts = api.get("/api/v1/hosts/web02", headers=auth).get_json()["facts"]
    assert facts["bmc_seen"] == {**seen, "mac": "52:54:00:aa:bb:cc"}

    assigned = api.put("/api/v1/hosts/web02/bmc", json=body, headers=auth)
    assert assigned.status_code == 200, assigned.get_json()
    assert assigned.get_json()["address"] == "127.0.0.1"
    status = api.get("/api/v1/hosts/web02/power", headers=auth)
    assert status.status_code == 200 and status.get_json()["power"] == "off"
