"""The reboot rule of the install cycle (pxe.boot.decide): a machine that asks to boot again
from its install token's address, with its own MAC, lost its installer; anyone else waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxe.config import Settings
from pxe.db.session import Database
from pxe.store import hosts, profiles
from pxe.store.events import list_events
from pxe.web.app import create_app
from tests.support.boot_script import answer_file_path, install_token

MAC = "52:54:00:12:34:56"
OTHER_MAC = "52:54:00:12:34:99"
INSTALLER = "10.0.0.5"
NEIGHBOUR = "10.0.0.9"


def _host(database: Database) -> int:
    with database.scope() as s:
        profiles.create_profile(s, "demo", release="demo", template="fresh-dhcp")
        return hosts.add_host(s, macs=[MAC], hostname="node1", profile="demo").id


def _boot(client, address: str, mac: str = MAC) -> str:
    return client.get(f"/boot/ipxe?mac={mac}", environ_base={"REMOTE_ADDR": address}).text


def _install_from(client, address: str) -> str:
    """Boot, fetch the answer file, report progress from ``address``: the install token."""
    script = _boot(client, address)
    path = answer_file_path(script)
    assert client.get(path, environ_base={"REMOTE_ADDR": address}).status_code == 200
    token = install_token(path)
    progress = client.post("/api/v1/installs/events", json={"step": "laydown"},
                           headers={"Authorization": f"Bearer {token}"},
                           environ_base={"REMOTE_ADDR": address})  # fmt: skip
    assert progress.status_code == 202
    return token


def _history(database: Database, host_id: int) -> tuple[str, int, list[tuple[str, str]]]:
    with database.scope(write=False) as s:
        host = hosts.get_host(s, host_id)
        events = [(e.kind, e.message) for e in list_events(s, host=host, limit=1000)]
        return host.state, host.install_attempts, events


@pytest.fixture
def client(settings: Settings, any_database: Database, demo_release: Path):
    return create_app(settings, database=any_database).test_client()


def test_a_reboot_from_the_bound_address_fails_the_attempt_and_starts_a_new_one(
    client, any_database: Database
) -> None:
    host_id = _host(any_database)
    old = _install_from(client, INSTALLER)
    script = _boot(client, INSTALLER)
    assert "answerfile=" in script, script
    state, attempts, events = _history(any_database, host_id)
    assert (state, attempts) == ("ready", 1)
    assert [e for e in events if e[0] == "failed"] == [("failed", "rebooted during the install")]
    assert any("retrying the install (attempt 2 of 3) after: rebooted during the install" in m
               for _, m in events)  # fmt: skip
    # The lost installer's token is over; the new cycle's installer counts the second attempt.
    refused = client.post("/api/v1/installs/events", json={"step": "x"},
                          headers={"Authorization": f"Bearer {old}"},
                          environ_base={"REMOTE_ADDR": INSTALLER})  # fmt: skip
    assert refused.status_code in (401, 403), refused.json
    answer = answer_file_path(script)
    assert install_token(answer) != old
    assert client.get(answer, environ_base={"REMOTE_ADDR": INSTALLER}).status_code == 200
    assert _history(any_database, host_id)[:2] == ("ready", 2)


def test_a_boot_request_from_another_address_or_mac_still_waits(
    client, any_database: Database
) -> None:
    host_id = _host(any_database)
    _install_from(client, INSTALLER)
    for address, mac in ((NEIGHBOUR, MAC), (INSTALLER, OTHER_MAC)):
        script = _boot(client, address, mac)
        assert "answerfile=" not in script and "sleep" in script, script
    state, attempts, events = _history(any_database, host_id)
    assert (state, attempts) == ("installing", 1)
    kinds = [kind for kind, _ in events]
    assert "failed" not in kinds and "security" not in kinds


def test_a_reboot_on_the_last_attempt_fails_the_host_for_good(
    settings: Settings, database: Database, demo_release: Path
) -> None:
    client = create_app(settings.replace(max_install_attempts=1), database=database).test_client()
    host_id = _host(database)
    _install_from(client, INSTALLER)
    script = _boot(client, INSTALLER)
    assert "answerfile=" not in script and "failed 1 install attempts" in script, script
    state, attempts, events = _history(database, host_id)
    assert (state, attempts) == ("failed", 1)
    assert events[-1] == ("failed", "rebooted during the install")
