"""Power control over Redfish (sushy) against sushy-tools' emulator on loopback.

The emulator's fake systems apply a power change a few seconds after acknowledging it, as
real hardware does, and report every boot override as "Continuous"; so what was asked is
read from the requests the emulator received, and what it applied from its own answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from support.bmc_sim import (
    FAKE_UUID,
    FAKE_UUID_ON,
    RedfishEmulator,
    closed_tcp_port,
    running_redfish,
)

from pxe.bmc import service
from pxe.bmc.driver import BmcAuthError, BmcUnreachableError, PowerAction, PowerState
from pxe.config import Settings
from pxe.db.models import Event
from pxe.db.session import Database
from pxe.store import hosts as host_store
from pxe.store.bmc import BmcSettings
from pxe.store.lifecycle import State
from pxe.store.profiles import create_profile

pytestmark = pytest.mark.usefixtures("fresh_bmc_cache")

ACTOR = "ops-token"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RedfishEmulator]:
    with running_redfish(tmp_path / "redfish") as running:
        yield running


@pytest.fixture
def bmc_settings(settings: Settings) -> Settings:
    return settings.replace(bmc_timeout=4, bmc_status_cache_seconds=60)



def _host(
    database: Database,
    settings: Settings,
    address: str,
    *,
    uuid: str = FAKE_UUID,
    password: str = "redfish-Secret-9",
) -> int:
    with database.scope() as session:
        create_profile(session, "base", release="demo", template="fresh-dhcp")
        host = host_store.add_host(
            session, macs=["52:54:00:bb:00:01"], hostname="db01", profile="base"
        )
        host_store.set_state(session, host, State.INSTALLING)
        host_store.set_state(session, host, State.INSTALLED)
        given = BmcSettings(
            "redfish",
            address,
            "root",
            password,
            system_path=f"/redfish/v1/Systems/{uuid}",
            verify_tls=False,
        )
        service.set_bmc(session, settings, host, given, ACTOR)
        return host.id


def _posts(emulator: RedfishEmulator, since: int) -> list[dict]:
    return [r for r in emulator.requests()[since:] if r["method"] in ("POST", "PATCH")]


def test_status_and_actions_reach_the_system(
    emulator: RedfishEmulator, database: Database, bmc_settings: Settings
) -> None:
    _host(database, bmc_settings, emulator.url, uuid=FAKE_UUID_ON)
    reading = service.power_status(database, bmc_settings, "db01", fresh=True)
    assert (reading.state, reading.cached) == (PowerState.ON, False)
    assert emulator.system(FAKE_UUID_ON)["PowerState"] == "On"

    seen = len(emulator.requests())
    for action in (PowerAction.CYCLE, PowerAction.OFF, PowerAction.ON):
        service.power_action(database, bmc_settings, "db01", action, ACTOR)
    sent = _posts(emulator, seen)
    reset = emulator.system_path(FAKE_UUID_ON) + "/Actions/ComputerSystem.Reset"
    assert [(r["path"], r["body"]) for r in sent] == [
        (reset, {"ResetType": "ForceRestart"}),  # on: restarted
        (reset, {"ResetType": "ForceOff"}),
        (reset, {"ResetType": "On"}),
    ]
    with database.scope(write=False) as session:
        events = list(session.scalars(select(Event).where(Event.kind == "power")))
    assert [e.step for e in events] == ["cycle", "off", "on"]
    assert all(ACTOR in e.message for e in events)


def test_cycle_of_a_system_that_is_off_powers_it_on(
    emulator: RedfishEmulator, database: Database, bmc_settings: Settings
) -> None:
    _host(database, bmc_settings, emulator.url)
    assert emulator.system()["PowerState"] == "Off"
    seen = len(emulator.requests())
    service.power_action(database, bmc_settings, "db01", PowerAction.CYCLE, ACTOR)
    assert [r["body"] for r in _posts(emulator, seen)] == [{"ResetType": "On"}]
    deadline = time.monotonic() + 20  # the fake system applies it within 11 s
    while emulator.system()["PowerState"] != "On":
        assert time.monotonic() < deadline, "the emulator never powered the system on"
        time.sleep(0.5)
    assert service.power_status(database, bmc_settings, "db01", fresh=True).state == "on"


def test_reinstall_sets_a_one_time_pxe_boot_then_cycles(
    emulator: RedfishEmulator, database: Database, bmc_settings: Settings
) -> None:
    host_id = _host(database, bmc_settings, emulator.url, uuid=FAKE_UUID_ON)
    seen = len(emulator.requests())
    view = service.reinstall_with_power(database, bmc_settings, "db01", ACTOR)
    assert view["state"] == "ready"
    patch, reset = _posts(emulator, seen)
    assert patch["method"] == "PATCH"
    assert patch["body"]["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert patch["body"]["Boot"]["BootSourceOverrideEnabled"] == "Once"
    assert reset["body"] == {"ResetType": "ForceRestart"}
    assert emulator.system(FAKE_UUID_ON)["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    with database.scope(write=False) as session:
        assert host_store.get_host(session, host_id).state == "ready"


def test_wrong_credentials_are_a_clear_error_and_change_nothing(
    emulator: RedfishEmulator, database: Database, bmc_settings: Settings
) -> None:
    host_id = _host(database, bmc_settings, emulator.url, password="wrong-Secret-0")
    seen = len(emulator.requests())
    with pytest.raises(BmcAuthError) as caught:
        service.reinstall_with_power(database, bmc_settings, "db01", ACTOR)
    message = str(caught.value)
    assert message.startswith(f"host db01: BMC redfish root@{emulator.url}:")
    assert "refused the credentials" in message and "HTTP 401" in message
    assert "wrong-Secret-0" not in message
    assert _posts(emulator, seen) == []
    with database.scope(write=False) as session:
        assert host_store.get_host(session, host_id).state == "installed"


def test_a_closed_port_fails_fast_and_clearly(database: Database, bmc_settings: Settings) -> None:
    port = closed_tcp_port()
    _host(database, bmc_settings, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(BmcUnreachableError) as caught:
        service.power_status(database, bmc_settings, "db01")
    assert time.monotonic() - started < bmc_settings.bmc_timeout + 1.5
    assert "did not answer (power status): connection refused" in str(caught.value)
    assert caught.value.status == 502
