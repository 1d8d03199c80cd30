"""Rolling reinstalls: N hosts at a time through their real BMCs (ipmi_sim), a failure stops the
roll, one driver per roll, a restarted ``serve`` resumes it; API, CLI, audit and events."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from support.bmc_sim import IpmiSim, free_udp_port, running_ipmi_sim
from support.registering import facts, mac_of, post_register
from support.serve import serve_process

from pxe import rolls as driver
from pxe.bmc import service
from pxe.config import Settings
from pxe.db.models import Audit, Event
from pxe.db.session import Database, close_databases
from pxe.store import hosts as host_store
from pxe.store.bmc import BmcSettings
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool
from pxe.store.profiles import create_profile
from pxe.store.tokens import VIEWER, create_api_token
from pxe.web.app import create_app
from tests.support.boot_script import answer_file_url, install_token
from xcp_provision.main import main

pytestmark = pytest.mark.usefixtures("fresh_bmc_cache")

OWNER = "test-driver"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[IpmiSim]:
    with running_ipmi_sim(tmp_path / "ipmi") as running:
        running.set_power(True)  # the rack is up: every host in its pool
        yield running


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.replace(bmc_timeout=4, bmc_status_cache_seconds=0)



@pytest.fixture
def api(fast: Settings, database: Database):
    return create_app(fast, database=database).test_client()


def _rack(database: Database, fast: Settings, count: int, bmc_port: int | None) -> list[int]:
    """``count`` hosts node0001.. in pool rack1, in the pool, node0001 its master; each with
    an IPMI BMC on ``bmc_port`` (None: no BMC)."""
    ids = []
    with database.scope() as session:
        create_profile(session, "base", release="demo", template="fresh-dhcp")
        pool = create_pool(session, "rack1")
        for number in range(1, count + 1):
            host = host_store.add_host(
                session, macs=[mac_of(number)], hostname=f"node{number:04d}", profile="base",
                pool="rack1",
            )  # fmt: skip
            for state in (State.INSTALLING, State.INSTALLED, State.IN_POOL):
                host_store.set_state(session, host, state)
            if bmc_port is not None:
                given = BmcSettings("ipmi", "127.0.0.1", "admin", "ipmi-Secret-7", bmc_port)
                service.set_bmc(session, fast, host, given, "tests")
            ids.append(host.id)
        pool.master_host_id = ids[0]
    return ids


def _state(database: Database, host_id: int) -> str:
    with database.scope(write=False) as session:
        return host_store.get_host(session, host_id).state


def _install(database: Database, host_id: int, final: State = State.IN_POOL) -> None:
    """What an installer and a first boot do to the inventory, without the machine."""
    with database.scope() as session:
        host = host_store.get_host(session, host_id)
        for state in (State.INSTALLING, State.INSTALLED, final):
            if host.state != state:
                host_store.set_state(session, host, state)


def _fail(database: Database, host_id: int) -> None:
    with database.scope() as session:
        host = host_store.get_host(session, host_id)
        host_store.set_state(session, host, State.FAILED, "installer: disk sda is read-only")


def _tick(database: Database, settings: Settings) -> None:
    driver.tick(database, settings, OWNER, 30)


def _roll(api, auth, **body: Any) -> dict[str, Any]:
    reply = api.post("/api/v1/reinstalls", json=body, headers=auth)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def _show(api, auth, roll_id: int) -> dict[str, Any]:
    reply = api.get(f"/api/v1/reinstalls/{roll_id}", headers=auth)
    assert reply.status_code == 200
    return reply.get_json()


def _ops(sim: IpmiSim) -> list[str]:
    return (sim.chassis / "ops.log").read_text().splitlines()


def test_a_pool_is_reinstalled_two_at_a_time_through_its_bmcs(
    api, auth, fast: Settings, database: Database, sim: IpmiSim
) -> None:
    ids = _rack(database, fast, 3, sim.port)
    master = ids[0]
    roll = _roll(api, auth, pool="rack1", power=True, max_parallel=2)
    assert roll["status"] == "running"
    # The master goes last: its members keep a master to rejoin meanwhile.
    assert roll["waiting"] == ["node0002", "node0003", "node0001"]
    assert _state(database, ids[1]) == "in-pool"  # nothing happens before the driver runs

    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert (shown["running"], shown["waiting"]) == (["node0002", "node0003"], ["node0001"])
    assert [_state(database, i) for i in ids] == ["in-pool", "ready", "ready"]
    # Each started host got its next boot from the network, then a reset, from the real BMC.
    ops = _ops(sim)
    assert ops.count("set boot pxe") == 2 and sim.resets() == 2, ops
    _tick(database, fast)  # nothing moved: nothing more starts
    assert _show(api, auth, roll["id"])["waiting"] == ["node0001"]

    _install(database, ids[2], final=State.INSTALLED)  # installed is enough to go on
    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert shown["done"] == ["node0003"]
    assert shown["running"] == ["node0002", "node0001"]
    assert _state(database, master) == "ready"
    assert sim.resets() == 3

    _install(database, ids[1])
    _install(database, master)
    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert shown["status"] == "done", shown
    assert shown["done"] == ["node0002", "node0003", "node0001"]
    assert shown["finished_at"] and shown["message"] == "all 3 host(s) reinstalled"
    assert [h["status"] for h in shown["hosts"]] == ["done"] * 3
    steps = [s["step"] for s in shown["steps"]]
    assert steps[:2] == ["created", "driver"] and steps[-1] == "finished"
    assert steps.count("host-started") == 3 and steps.count("host-done") == 3
    assert api.get("/api/v1/reinstalls?status=done", headers=auth).get_json()["reinstalls"][0][
        "id"] == roll["id"]  # fmt: skip

    with database.scope(write=False) as session:
        rolled = list(session.scalars(
            select(Event.step).where(Event.host_id == master, Event.kind == "roll")
            .order_by(Event.id)))  # fmt: skip
        audit = list(session.scalars(select(Audit).order_by(Audit.id)))
    assert rolled == ["host-started", "host-done"]
    actions = [(a.actor, a.action) for a in audit]
    assert ("tests", "POST /api/v1/reinstalls") in actions
    assert actions.count(("tests", "reinstalls.host-start")) == 3
    assert actions.count(("tests", "reinstalls.host-done")) == 3
    assert ("tests", "reinstalls.finish") in actions


def test_a_failed_host_stops_the_roll_unless_told_to_continue(
    api, auth, fast: Settings, database: Database
) -> None:
    ids = _rack(database, fast, 3, None)
    roll = _roll(api, auth, hosts=["node0002", "node0003", "node0001"], max_parallel=1)
    _tick(database, fast)
    assert _state(database, ids[1]) == "ready"  # no power: it reinstalls at its next boot
    _fail(database, ids[1])
    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert shown["status"] == "failed"
    assert (shown["failed"], shown["waiting"]) == (["node0002"], ["node0003", "node0001"])
    assert "disk sda is read-only" in shown["hosts"][0]["message"]
    assert "not started: node0003, node0001" in shown["message"]
    assert [_state(database, i) for i in (ids[0], ids[2])] == ["in-pool", "in-pool"]
    _tick(database, fast)  # a finished roll stays as it is
    assert _state(database, ids[2]) == "in-pool"

    with database.scope() as session:  # the operator fixed it; roll on, past failures
        host_store.reinstall_host(session, host_store.get_host(session, ids[1]))
    roll = _roll(api, auth, pool="rack1", max_parallel=1, continue_on_failure=True)
    _tick(database, fast)
    first = _show(api, auth, roll["id"])["running"]
    _fail(database, ids[[f"node{n:04d}" for n in (1, 2, 3)].index(first[0])])
    for _ in range(2):
        _tick(database, fast)
        for name in _show(api, auth, roll["id"])["running"]:
            _install(database, ids[int(name[-1]) - 1])
    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert shown["status"] == "failed" and len(shown["done"]) == 2 and shown["failed"] == first
    assert "not started" not in shown["message"]


def test_a_bmc_that_fails_fails_its_host_and_changes_nothing(
    api, auth, fast: Settings, database: Database, sim: IpmiSim
) -> None:
    ids = _rack(database, fast, 2, free_udp_port())  # nothing answers there
    roll = _roll(api, auth, hosts=["node0001"], power=True)
    _tick(database, fast)
    shown = _show(api, auth, roll["id"])
    assert shown["status"] == "failed" and shown["failed"] == ["node0001"]
    assert "could not start" in shown["hosts"][0]["message"]
    assert "did not answer" in shown["hosts"][0]["message"]
    assert _state(database, ids[0]) == "in-pool"


def test_the_roll_request_is_checked(
    api, auth, fast: Settings, database: Database, sim: IpmiSim
) -> None:
    _rack(database, fast, 2, None)
    for body, words in (
        ({}, "name what to reinstall"),
        ({"pool": "rack1", "max_parallel": 0}, "max_parallel"),
        ({"pool": "rack1", "max_parallel": "2"}, "'max_parallel' must be a whole number"),
        ({"pool": "rack1", "speed": 3}, "unknown field(s) speed"),
        ({"hosts": "node0001"}, "'hosts' must be a list"),
    ):
        reply = api.post("/api/v1/reinstalls", json=body, headers=auth)
        assert reply.status_code == 400 and words in reply.get_json()["error"], (body, reply.json)
    for body, words in (
        ({"pool": "nowhere"}, "pool"),
        ({"pool": "rack1", "power": True}, "no BMC (needed with power): node0002, node0001"),
        ({"pool": "rack1", "profile": "base", "hosts": ["node0001", "ghost"]}, "ghost"),
    ):
        reply = api.post("/api/v1/reinstalls", json=body, headers=auth)
        assert reply.status_code == 409 and words in reply.get_json()["error"], (body, reply.json)
    _roll(api, auth, hosts=["node0002"])
    busy = api.post("/api/v1/reinstalls", json={"pool": "rack1"}, headers=auth)
    assert busy.status_code == 409 and "node0002 (roll 1)" in busy.get_json()["error"]
    with database.scope() as session:
        viewer = create_api_token(session, "watcher", role=VIEWER)
    seen = {"Authorization": f"Bearer {viewer}"}
    assert api.post("/api/v1/reinstalls", json={"pool": "rack1"}, headers=seen).status_code == 403
    assert api.get("/api/v1/reinstalls/1", headers=seen).status_code == 200
    assert api.get("/api/v1/reinstalls/99", headers=auth).status_code == 404
    spec = api.get("/api/v1/openapi.json", headers=auth).get_json()
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/reinstalls"])
    assert spec["paths"]["/api/v1/reinstalls"]["post"]["x-required-role"] == "admin"
    assert "RollInput" in spec["components"]["schemas"]


def test_one_driver_at_a_time_and_another_resumes_after_it(
    api, auth, fast: Settings, database: Database
) -> None:
    ids = _rack(database, fast, 2, None)
    roll = _roll(api, auth, pool="rack1", max_parallel=1)
    assert driver.tick(database, fast, "server-a:1", 30) == 1
    assert driver.tick(database, fast, "server-b:2", 30) == 0  # a's lease holds
    assert _show(api, auth, roll["id"])["driver"] == "server-a:1"
    driver.release(database, "server-a:1")  # a stopped
    _install(database, ids[1])
    assert driver.tick(database, fast, "server-b:2", 30) == 1
    shown = _show(api, auth, roll["id"])
    assert shown["done"] == ["node0002"] and shown["running"] == ["node0001"]
    drivers = [s["message"] for s in shown["steps"] if s["step"] == "driver"]
    assert drivers == ["driven by server-a:1", "resumed by server-b:2"]
    assert [s["step"] for s in shown["steps"]].count("host-started") == 2


def test_serve_drives_a_roll_and_resumes_it_after_a_restart(tmp_path: Path) -> None:
    """A real ``serve`` with two HTTP workers: the roll starts, the server stops mid-roll,
    the installs go on meanwhile, a new ``serve`` resumes where the first one stopped."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    database = Database(settings.database)
    database.migrate()
    with database.scope() as session:
        create_pool(session, "rack1")
        token = create_api_token(session, "ops")
    database.dispose()
    auth = {"Authorization": f"Bearer {token}"}

    def call(url: str, method: str, path: str, body: Any = None, bearer=None) -> Any:
        request = urllib.request.Request(
            url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **(bearer or auth)},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text.startswith(("{", "[")) else text

    def until(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"not within {seconds} s: {what}")

    def install(url: str, number: int) -> None:
        script = call(url, "GET", f"/boot/ipxe?mac={mac_of(number)}")
        token = install_token(answer_file_url(script))
        bearer = {"Authorization": f"Bearer {token}"}
        call(url, "POST", "/api/v1/installs/done", None, bearer)
        status, _ = post_register(url, token, facts(number))
        assert status == 200

    args = ("--demo", "--tftp-port", "0", "--no-dhcp", "--workers", "2")
    with serve_process(data, *args) as (url, _proc):
        for number in (1, 2):
            call(url, "POST", "/api/v1/hosts", {"mac": mac_of(number),
                 "hostname": f"node{number:04d}", "profile": "demo", "pool": "rack1"})  # fmt: skip
            install(url, number)
        roll = call(url, "POST", "/api/v1/reinstalls", {"pool": "rack1", "max_parallel": 1})
        path = f"/api/v1/reinstalls/{roll['id']}"
        until(lambda: call(url, "GET", path)["running"] == ["node0002"], "node0002 started")
    # serve stopped mid-roll; the host installs meanwhile, as the next server will see.
    close_databases()
    with serve_process(data, *args) as (url, _proc):
        install(url, 2)
        until(lambda: call(url, "GET", path)["running"] == ["node0001"], "node0001 started")
        install(url, 1)
        shown = until(lambda: (v := call(url, "GET", path))["status"] == "done" and v, "done")
    steps = [(s["step"], s["message"]) for s in shown["steps"]]
    drivers = [m for step, m in steps if step == "driver"]
    assert len(drivers) == 2 and drivers[0].startswith("driven by")
    assert drivers[1].startswith("resumed by") and drivers[0] != drivers[1]
    # One driver per server, whatever its worker processes: each host started exactly once.
    assert [step for step, _ in steps].count("host-started") == 2
    assert shown["done"] == ["node0002", "node0001"]


def test_cli_starts_and_shows_a_roll(
    fast: Settings, database: Database, sim: IpmiSim, tmp_path: Path
) -> None:
    _rack(database, fast, 2, sim.port)
    data = ["--data-dir", str(fast.data_dir)]
    runner = CliRunner()
    started = runner.invoke(
        main,
        ["hosts", "reinstall", "--pool", "rack1", "--power", "--max-parallel", "2",
         "--continue-on-failure", *data],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "roll 1: 2 host(s), 2 at a time" in started.output
    close_databases()
    driver.tick(database, fast, OWNER, 30)
    shown = runner.invoke(main, ["reinstalls", "show", "1", "--json", *data])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert view["running"] == ["node0002", "node0001"] and view["power"] is True
    assert view["requested_by"].startswith("cli:") and view["continue_on_failure"] is True
    table = runner.invoke(main, ["reinstalls", "show", "1", *data])
    assert "host-started" in table.output and "node0002" in table.output
    listed = runner.invoke(main, ["reinstalls", "list", "--json", *data])
    assert [r["id"] for r in json.loads(listed.output)["reinstalls"]] == [1]
    refused = runner.invoke(main, ["hosts", "reinstall", "--pool", "rack1", *data])
    assert refused.exit_code != 0 and "already in a running roll" in refused.output
    with database.scope(write=False) as session:
        audit = [(a.action, a.result) for a in session.scalars(select(Audit).order_by(Audit.id))]
    assert audit[0] == ("reinstalls.create", "ok")
    assert ("reinstalls.host-start", "ok") in audit
    assert audit[-1][0] == "reinstalls.create" and "already in a running roll" in audit[-1][1]
