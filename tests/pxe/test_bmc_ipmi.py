"""Power control over IPMI 2.0 (pyghmi) against a real BMC: OpenIPMI's ipmi_sim on loopback.

The chassis behind ipmi_sim is a program keeping power, boot device and resets in files, so
each test checks what the BMC was told from the chassis itself, and ipmitool (a second,
independent IPMI client) confirms what the BMC reports.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import select
from support.bmc_sim import IpmiSim, free_udp_port

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

ACTOR = "cli:tester"



@pytest.fixture
def bmc_settings(settings: Settings) -> Settings:
    return settings.replace(bmc_timeout=3, bmc_status_cache_seconds=60)



def _host(
    database: Database,
    settings: Settings,
    *,
    port: int,
    username: str,
    password: str,
    state: State = State.INSTALLED,
) -> int:
    with database.scope() as session:
        create_profile(session, "base", release="demo", template="fresh-dhcp")
        host = host_store.add_host(
            session, macs=["52:54:00:aa:00:01"], hostname="web01", profile="base"
        )
        if state is not State.READY:
            host_store.set_state(session, host, State.INSTALLING)
            host_store.set_state(session, host, state)
        given = BmcSettings("ipmi", "127.0.0.1", username, password, port=port)
        service.set_bmc(session, settings, host, given, ACTOR)
        return host.id


def _events(database: Database, kind: str) -> list[Event]:
    with database.scope(write=False) as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def test_power_on_off_cycle_and_status(
    sim: IpmiSim, database: Database, bmc_settings: Settings
) -> None:
    _host(database, bmc_settings, port=sim.port, username=sim.username, password=sim.password)
    reading = service.power_status(database, bmc_settings, "web01", fresh=True)
    assert (reading.state, reading.cached) == (PowerState.OFF, False)

    service.power_action(database, bmc_settings, "web01", PowerAction.ON, ACTOR)
    assert sim.power() == "on"
    assert "Chassis Power is on" in sim.ipmitool("chassis", "power", "status").stdout
    assert service.power_status(database, bmc_settings, "web01").state is PowerState.ON

    service.power_action(database, bmc_settings, "web01", PowerAction.CYCLE, ACTOR)
    assert sim.resets() == 1  # on: a hard reset
    assert sim.power() == "on"

    service.power_action(database, bmc_settings, "web01", PowerAction.OFF, ACTOR)
    assert sim.power() == "off"
    service.power_action(database, bmc_settings, "web01", PowerAction.CYCLE, ACTOR)
    assert sim.power() == "on"  # off: cycle powers it on
    assert sim.resets() == 1

    messages = [e.message for e in _events(database, "power")]
    assert len(messages) == 4
    assert all(ACTOR in m for m in messages)
    assert [e.step for e in _events(database, "power")] == ["on", "cycle", "off", "cycle"]


def test_status_is_read_from_the_cache_until_asked_fresh(
    sim: IpmiSim, database: Database, bmc_settings: Settings
) -> None:
    _host(database, bmc_settings, port=sim.port, username=sim.username, password=sim.password)
    assert service.power_status(database, bmc_settings, "web01").state is PowerState.OFF
    sim.set_power(True)  # the host powered on by hand, behind our back
    before = len((sim.chassis / "ops.log").read_text().splitlines())
    cached = service.power_status(database, bmc_settings, "web01")
    assert (cached.state, cached.cached) == (PowerState.OFF, True)
    assert len((sim.chassis / "ops.log").read_text().splitlines()) == before  # BMC not asked
    fresh = service.power_status(database, bmc_settings, "web01", fresh=True)
    assert (fresh.state, fresh.cached) == (PowerState.ON, False)


def test_reinstall_with_power_boots_the_network_once_and_cycles(
    sim: IpmiSim, database: Database, bmc_settings: Settings
) -> None:
    host_id = _host(
        database, bmc_settings, port=sim.port, username=sim.username, password=sim.password
    )
    sim.set_power(True)
    view = service.reinstall_with_power(database, bmc_settings, "web01", ACTOR)
    assert view["state"] == "ready"
    assert sim.boot() == "pxe"
    assert sim.resets() == 1
    ops = (sim.chassis / "ops.log").read_text().splitlines()
    assert ops.index("set boot pxe") < ops.index("set reset 1")  # boot device first
    with database.scope(write=False) as session:
        assert host_store.get_host(session, host_id).state == "ready"
    assert any("reinstall" in e.message and ACTOR in e.message for e in _events(database, "power"))


def test_wrong_password_is_one_clear_error_and_changes_nothing(
    sim: IpmiSim, database: Database, bmc_settings: Settings
) -> None:
    host_id = _host(
        database, bmc_settings, port=sim.port, username=sim.username, password="not-the-one"
    )
    with pytest.raises(BmcAuthError) as caught:
        service.reinstall_with_power(database, bmc_settings, "web01", ACTOR)
    message = str(caught.value)
    assert caught.value.status == 502
    assert message.startswith("host web01: BMC ipmi admin@127.0.0.1:")
    assert "refused the credentials" in message
    assert "not-the-one" not in message
    with database.scope(write=False) as session:
        assert host_store.get_host(session, host_id).state == "installed"
    assert (sim.boot(), sim.resets(), sim.power()) == ("", 0, "off")
    failed = _events(database, "power-failed")
    assert len(failed) == 1
    assert ACTOR in failed[0].message
    assert "not-the-one" not in failed[0].message


def test_a_bmc_that_does_not_answer_fails_within_the_bound(
    database: Database, bmc_settings: Settings
) -> None:
    port = free_udp_port()  # nothing listens there
    _host(database, bmc_settings, port=port, username="admin", password="whatever")
    started = time.monotonic()
    with pytest.raises(BmcUnreachableError) as caught:
        service.power_action(database, bmc_settings, "web01", PowerAction.ON, ACTOR)
    elapsed = time.monotonic() - started
    assert elapsed < bmc_settings.bmc_timeout + 1.5
    assert f"127.0.0.1:{port} did not answer" in str(caught.value)
    assert caught.value.status == 502
    # A failed read is remembered for the cache's time: the next one does not wait again.
    with pytest.raises(BmcUnreachableError):
        service.power_status(database, bmc_settings, "web01")
    started = time.monotonic()
    with pytest.raises(BmcUnreachableError):
        service.power_status(database, bmc_settings, "web01")
    assert time.monotonic() - started < 0.5
    assert len(_events(database, "power-failed")) == 2  # the action, then the read once


# A fresh process (pyghmi's sockets and I/O thread are per process) whose descriptors are
# already past select()'s 1023 when it first talks IPMI, as a long-running server's are.
_MANY_FILES = """
import os, resource, sys
from pxe.bmc.driver import BmcConfig
from pxe.bmc.ipmi import IpmiDriver
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
port, user, password = sys.argv[1:]
config = BmcConfig("ipmi", "127.0.0.1", int(port), user, password)
print(IpmiDriver(config).power_state().value)
"""


def test_ipmi_works_in_a_process_past_a_thousand_open_files(sim: IpmiSim) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", _MANY_FILES, str(sim.port), sim.username, sim.password],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "off"
    assert "out of range in select" not in ran.stderr
