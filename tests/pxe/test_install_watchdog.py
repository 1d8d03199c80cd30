"""An install that goes silent fails on its own; a failed install is retried a bounded number of
times; the attempts are shown wherever the host is."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import update
from support.serve import serve_process

from pxe.boot.watchdog import fail_stalled_installs
from pxe.config import Settings
from pxe.db.models import Event, Host, utcnow
from pxe.db.session import Database, close_databases
from pxe.store import hosts, profiles
from pxe.store.events import list_events
from pxe.store.lifecycle import State
from pxe.store.tokens import create_api_token
from pxe.web.app import create_app
from tests.support.boot_script import answer_file_path, answer_file_url, install_token
from xcp_provision.main import main

MAC = "52:54:00:12:34:56"


def _ready(database: Database, mac: str = MAC, name: str = "node1") -> int:
    with database.scope() as s:
        if not profiles.list_profiles(s):
            profiles.create_profile(s, "demo", release="demo", template="fresh-dhcp")
        return hosts.add_host(s, macs=[mac], hostname=name, profile="demo").id


def _start_install(client, mac: str = MAC) -> str:
    """Boot, fetch the answer file, report progress: the install token."""
    script = client.get(f"/boot/ipxe?mac={mac}").text
    path = answer_file_path(script)
    assert client.get(path).status_code == 200
    token = install_token(path)
    progress = client.post("/api/v1/installs/events", json={"step": "partition"},
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert progress.status_code == 202
    return token


def _age_events(database: Database, host_id: int, seconds: int) -> None:
    """As if the host's last word and its token's first use were ``seconds`` ago."""
    past = utcnow() - timedelta(seconds=seconds)
    with database.engine.begin() as conn:
        conn.execute(update(Event).where(Event.host_id == host_id).values(time=past))
        conn.execute(update(Host).where(Host.id == host_id).values(token_claimed_at=past))


def test_a_silent_install_fails_and_a_talking_one_does_not(
    settings: Settings, any_database: Database, demo_release: Path
) -> None:
    database = any_database
    client = create_app(settings, database=database).test_client()
    silent = _ready(database)
    talking = _ready(database, "52:54:00:12:34:57", "node2")
    _start_install(client)
    _start_install(client, "52:54:00:12:34:57")
    _age_events(database, silent, 120)
    _age_events(database, talking, 30)
    assert fail_stalled_installs(database, timeout=timedelta(seconds=60)) == 1
    with database.scope(write=False) as s:
        host = hosts.get_host(s, silent)
        assert host.state == State.FAILED
        assert "no word from its installer for 1 min" in host.state_reason
        assert list_events(s, host=host)[-1].kind == "failed"
        assert hosts.get_host(s, talking).state == State.INSTALLING
    assert fail_stalled_installs(database, timeout=timedelta(seconds=60)) == 0


def test_a_failed_install_is_retried_up_to_max_install_attempts(
    settings: Settings, database: Database, demo_release: Path, auth: dict
) -> None:
    client = create_app(settings.replace(max_install_attempts=2), database=database).test_client()
    host_id = _ready(database)
    for attempt in (1, 2):
        token = _start_install(client)
        failed = client.post("/api/v1/installs/failed", json={"reason": "disk on fire"},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert failed.status_code == 202
        view = client.get(f"/api/v1/hosts/{host_id}", headers=auth).json
        assert (view["state"], view["install_attempts"]) == ("failed", attempt)
    script = client.get(f"/boot/ipxe?mac={MAC}").text
    assert "answerfile=" not in script and "sleep" in script
    assert "failed 2 install attempts" in script
    with database.scope(write=False) as s:
        kinds = [e.message for e in list_events(s, host=hosts.get_host(s, host_id))]
        assert any("retrying the install (attempt 2 of 2)" in m for m in kinds)
    # An operator's reinstall starts the count again.
    assert client.post(f"/api/v1/hosts/{host_id}/reinstall", headers=auth).status_code == 200
    assert "answerfile=" in client.get(f"/boot/ipxe?mac={MAC}").text
    assert client.get(f"/api/v1/hosts/{host_id}", headers=auth).json["install_attempts"] == 0


def test_hosts_show_lists_attempts_and_queue(settings: Settings, database: Database,
                                             demo_release: Path) -> None:  # fmt: skip
    client = create_app(settings, database=database).test_client()
    _ready(database)
    _start_install(client)
    result = CliRunner().invoke(
        main, ["hosts", "show", MAC, "--data-dir", str(settings.data_dir), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["install_attempts"], shown["queued"]) == (1, False)
    close_databases()


def test_serve_fails_a_silent_install_without_being_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = Database(Settings(data_dir=data).database)
    database.migrate()
    with database.scope() as s:
        api = create_api_token(s, "tests")
    database.dispose()
    env = {"XCP_PROVISION_INSTALL_TIMEOUT": "1", "XCP_PROVISION_WATCHDOG_INTERVAL": "1"}
    with serve_process(data, "--demo", "--tftp-port", "0", "--no-dhcp", "--workers", "1",
                       env=env) as (base, _proc):  # fmt: skip
        auth = {"Authorization": f"Bearer {api}", "Content-Type": "application/json"}

        def call(path: str, body: dict | None = None, headers: dict | None = None) -> dict:
            data_ = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(base + path, data=data_, headers=headers or {})
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
            return json.loads(text) if text.startswith("{") else {"text": text}

        call("/api/v1/hosts", {"mac": MAC, "hostname": "node1", "profile": "demo"}, auth)
        script = call(f"/boot/ipxe?mac={MAC}")["text"]
        answer = answer_file_url(script)
        urllib.request.urlopen(answer, timeout=10).read()
        token = install_token(answer)
        host_auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        call("/api/v1/installs/events", {"step": "partition"}, host_auth)
        deadline = time.monotonic() + 15
        while (state := call("/api/v1/hosts/node1", headers=auth)["state"]) == "installing":
            assert time.monotonic() < deadline, "the watchdog never failed the silent install"
            time.sleep(0.3)
        assert state == "failed"
        assert "no word from its installer" in call("/api/v1/hosts/node1", headers=auth)[
            "state_reason"]
