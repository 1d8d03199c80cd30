"""Unknown machines cannot fill the inventory: discovery off, a ceiling, a rate per address."""

from __future__ import annotations

import logging

import pytest

from pxe.boot.decide import plan_for_mac
from pxe.config import Settings, load_settings
from pxe.db.session import Database
from pxe.store import hosts
from pxe.tftp.files import GeneratedFiles
from pxe.web.app import create_app


def _mac(number: int) -> str:
    return f"52:54:00:00:01:{number:02x}"


def _boot(client, number: int, address: str = "192.0.2.10") -> str:
    response = client.get(f"/boot/ipxe?mac={_mac(number)}",
                          environ_base={"REMOTE_ADDR": address})  # fmt: skip
    assert response.status_code == 200
    return response.text


def _count(database: Database) -> int:
    with database.scope(write=False) as s:
        return len(hosts.list_hosts(s))


def _refused(client, reason: str) -> float:
    prefix = f'xcp_provision_discovery_refused_total{{reason="{reason}"}} '
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def _client(settings: Settings, database: Database, **changes):
    return create_app(settings.replace(**changes), database=database).test_client()


def test_the_settings_have_safe_defaults_and_read_from_toml(tmp_path) -> None:
    defaults = Settings()
    assert (defaults.discovery, defaults.max_discovered, defaults.discovery_rate) == (
        True, 10000, 10)  # fmt: skip
    config = tmp_path / "server.toml"
    config.write_text('discovery = "off"\nmax_discovered = 5\ndiscovery_rate = 3\n')
    loaded = load_settings(config, environ={})
    assert (loaded.discovery, loaded.max_discovered, loaded.discovery_rate) == (False, 5, 3)


def test_with_discovery_off_unknown_machines_are_told_no_and_nothing_is_written(
    settings: Settings, database: Database
) -> None:
    client = _client(settings, database, discovery=False)
    script = _boot(client, 1)
    assert script.startswith("#!ipxe") and "not allowed" in script
    assert "chain" not in script.split("not allowed", 1)[1]  # no loop back to the server
    files = GeneratedFiles(plan_for_mac(settings.replace(discovery=False), database), "http://s")
    assert b"not allowed" in files("pxelinux.cfg/01-52-54-00-00-01-02", "192.0.2.11")
    assert _count(database) == 0
    assert _refused(client, "off") == 1


def test_past_max_discovered_nothing_is_written(settings: Settings, database: Database) -> None:
    client = _client(settings, database, max_discovered=2)
    for number in range(3):
        _boot(client, number, f"192.0.2.{20 + number}")
    assert _count(database) == 2
    assert "inventory" in _boot(client, 9, "192.0.2.30")
    assert _refused(client, "inventory-full") == 2


def test_discovery_writes_are_rate_limited_per_address_and_logged_once(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(settings, database, discovery_rate=2)
    with caplog.at_level(logging.INFO, logger="pxe.boot"):
        for number in range(6):
            _boot(client, number, "192.0.2.10")
        _boot(client, 7, "192.0.2.11")  # another address has its own allowance
    assert _count(database) == 3
    assert _refused(client, "rate-limited") == 4
    refusals = [r for r in caplog.records if "rate-limited" in r.getMessage()]
    assert len(refusals) == 1
    _boot(client, 0, "192.0.2.10")  # a machine already known is never limited
    assert _refused(client, "rate-limited") == 4
