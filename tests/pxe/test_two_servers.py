"""Two ``serve`` processes, separate data directories, one PostgreSQL: the README's recipe for a
site that outgrew one machine, under a rack and a wave of registrations split between them.

The servers start at the same instant on an empty database (both migrate it and seed the demo
profile), share the dashboard and BMC key files as the README says, and then take: a rack
booting half from each (curl via bench/rack_host.sh), hosts booting from both at once, a
build-done sent to both at once, and registrations split between them with each small pool's
first two hosts registering on different servers at one barrier. Every host must be installed
once, every registration recorded once, every pool have one master, and both servers' APIs
must agree.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.postgres import PostgresCluster
from support.registering import facts, installed_host, ip_of
from support.serve import EXE, free_port, stop, wait_healthy

from common import runner
from pxe.bmc.crypto import cipher, key_path
from pxe.db.models import Event, Host, HostMac
from pxe.db.session import Database
from pxe.registration import JOINED
from pxe.store.pools import create_pool
from pxe.store.tokens import create_api_token
from pxe.web.dashboard.login import SECRET_FILE, secret_key
from tests.support.boot_script import answer_file_url, install_token

RACK_HOST = Path(__file__).resolve().parents[2] / "bench" / "rack_host.sh"
RACK = 20  # hosts, half booting from each server
DOUBLED = 4  # hosts whose boot goes to both servers at once
BIG_POOLS, BIG_POOL_HOSTS = 3, 30
DUEL_POOLS = 10  # pools of two hosts whose registrations hit both servers at one barrier
NAMED_POOLS = 5  # the same, the pool named only by the registrations (created by the first)
UNKNOWN = 10  # unknown machines asking both servers to boot at once


@dataclass(frozen=True)
class Server:
    base: str
    tftp_port: int
    data: Path

    @property
    def address(self) -> str:
        return self.base.removeprefix("http://")


@dataclass(frozen=True)
class Pair:
    a: Server
    b: Server
    database: Database
    token: str  # an API token, valid on both (the inventory is shared)


def call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One request; the status and the JSON (or text) answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def shared_keys(first: Path, second: Path) -> None:
    """The README's step: the dashboard and BMC key files made once and copied to the other
    data directory, so a session or an encrypted BMC password works on either server."""
    secret_key(first)
    cipher(first)
    second.mkdir(parents=True)
    for name in (SECRET_FILE, key_path(first).name):
        shutil.copy2(first / name, second / name)


@pytest.fixture(scope="module")
def pair(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    url = postgres.new_database()
    root = tmp_path_factory.mktemp("two-servers")
    shared_keys(root / "a", root / "b")
    # Every client is on loopback: no discovery rate limit per source address.
    env = {**os.environ, "XCP_PROVISION_DATABASE_URL": url, "XCP_PROVISION_DISCOVERY_RATE": "0"}
    procs, servers = [], []
    try:
        for name in ("a", "b"):  # started together: both migrate and seed the empty database
            port, tftp = free_port(), free_port(socket.SOCK_DGRAM)
            log = open(root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            procs.append((runner.start(
                [EXE, "serve", "--data-dir", root / name, "--bind", "127.0.0.1", "--http-port",
                 str(port), "--tftp-port", str(tftp), "--no-dhcp", "--demo"],
                stdout=log, stderr=subprocess.STDOUT, env=env), log))  # fmt: skip
            servers.append(Server(f"http://127.0.0.1:{port}", tftp, root / name))
        for (proc, _), server in zip(procs, servers, strict=True):
            try:
                wait_healthy(server.base, proc)
            except OSError:
                log_text = (root / f"{server.data.name}.log").read_text()
                pytest.fail(f"{server.data.name} did not start: {log_text[-2000:]}")
        database = Database(url)
        with database.scope() as session:
            token = create_api_token(session, "two-servers")
        yield Pair(servers[0], servers[1], database, token)
        database.dispose()
    finally:
        for proc, log in procs:
            stop(proc)
            log.close()


def rack_mac(number: int) -> str:
    return f"52:54:01:00:{number >> 8:02x}:{number & 0xFF:02x}"


def boot_script(server: Server, mac: str) -> str:
    status, text = call(f"{server.base}/boot/ipxe?mac={mac}&uuid=&serial=&arch=x86_64")
    assert status == 200, text
    return text


def events(pair: Pair, kind: str) -> Counter[int]:
    """How many events of ``kind`` each host has, in the shared inventory."""
    with pair.database.scope(write=False) as session:
        rows = session.execute(
            select(Event.host_id, func.count()).where(Event.kind == kind).group_by(Event.host_id)
        )
        return Counter(dict(rows.all()))


def doubled_boot(pair: Pair, mac: str) -> str:
    """One machine asking both servers at once, then fetching both answer files at once:
    exactly one token may open one; returns it."""
    barrier = threading.Barrier(2)

    def boot(server: Server) -> tuple[int, str]:
        barrier.wait()
        script = boot_script(server, mac)
        found = answer_file_url(script)
        barrier.wait()
        if found is None:  # the other one's installer claimed the host first: a wait
            return 0, ""
        status, _ = call(found)
        return status, install_token(found)

    with ThreadPoolExecutor(2) as executor:
        answers = list(executor.map(boot, (pair.a, pair.b)))
    opened = [token for status, token in answers if status == 200]
    assert len(opened) == 1, f"answer files opened for {mac}: {answers}"
    return opened[0]


def done_on_both(pair: Pair, token: str) -> list[int]:
    """build-done with one token, sent to both servers at the same instant: the statuses."""
    barrier = threading.Barrier(2)

    def done(server: Server) -> int:
        barrier.wait()
        return call(f"{server.base}/api/v1/installs/done", "POST", {}, token)[0]

    with ThreadPoolExecutor(2) as executor:
        return sorted(executor.map(done, (pair.a, pair.b)))


def test_rack_split_between_two_servers_installs_each_host_once(pair: Pair) -> None:
    hosts = {f"r{i:02d}": rack_mac(i) for i in range(RACK + DOUBLED)}
    for name, mac in hosts.items():
        status, body = call(
            f"{pair.a.base}/api/v1/hosts",
            "POST",
            {"mac": mac, "hostname": name, "profile": "demo"},
            pair.token,
        )
        assert status == 201, body
    rack = list(hosts.items())[:RACK]
    doubled = list(hosts.items())[RACK:]

    def boot_with_curl(index: int, mac: str) -> subprocess.CompletedProcess:
        server = (pair.a, pair.b)[index % 2]
        return runner.run(["bash", RACK_HOST, mac, str(server.tftp_port), server.address],
                          check=False, timeout=180)  # fmt: skip

    with ThreadPoolExecutor(RACK + DOUBLED) as executor:
        booted = [executor.submit(boot_with_curl, i, mac) for i, (_, mac) in enumerate(rack)]
        winners = [executor.submit(doubled_boot, pair, mac) for _, mac in doubled]
        failed = [(r.args[2], r.stderr) for f in booted if (r := f.result()).returncode != 0]
        winners_of = {name: f.result() for (name, _), f in zip(doubled, winners, strict=True)}
    assert not failed, failed

    for name, token in winners_of.items():
        statuses = done_on_both(pair, token)
        assert statuses == [200, 409], f"{name}: build-done answered {statuses}"

    for server in (pair.a, pair.b):
        for name in hosts:
            status, host = call(f"{server.base}/api/v1/hosts/{name}", token=pair.token)
            assert (status, host["state"]) == (200, "installed"), (server.base, name, host)
    done_events = events(pair, "done")
    assert sorted(done_events.values()) == [1] * len(hosts), done_events


def registration(server: Server, token: str, number: int, named: str | None) -> tuple[int, dict]:
    """One first-boot agent (passing on the pool its answer file ``named``, if any): registers,
    and again after a short wait while the pool's master is not in yet (503), as the agent does
    after Retry-After."""
    body = facts(number, **({"pool": named} if named else {}))
    for _ in range(100):
        status, answer = call(f"{server.base}/api/v1/register", "POST", body, token)
        if status != 503:
            return status, answer
        time.sleep(0.1)
    return status, answer


def test_registrations_split_between_two_servers_one_master_per_pool(pair: Pair) -> None:
    # (pool, host number, install token, the pool as the answer file names it or None)
    plan: list[tuple[str, int, str, str | None]] = []
    pools = [f"big{p}" for p in range(BIG_POOLS)] + [f"duel{p}" for p in range(DUEL_POOLS)]
    with pair.database.scope() as session:
        for name in pools:
            create_pool(session, name)
    number = 1000
    for name in pools:
        for _ in range(BIG_POOL_HOSTS if name.startswith("big") else 2):
            number += 1
            plan.append((name, number, installed_host(pair.database, number, pool=name), None))
    for name in (f"named{p}" for p in range(NAMED_POOLS)):
        pools.append(name)
        for _ in range(2):
            number += 1
            plan.append((name, number, installed_host(pair.database, number), name))
    barrier = threading.Barrier(len(plan))

    def agent(index: int) -> tuple[int, dict]:
        _, number, token, named = plan[index]
        barrier.wait()  # a small pool's two hosts are neighbours: one on each server
        return registration((pair.a, pair.b)[index % 2], token, number, named)

    with ThreadPoolExecutor(len(plan)) as executor:
        answers = list(executor.map(agent, range(len(plan))))
    refused = [(plan[i][1], a) for i, a in enumerate(answers) if a[0] != 200]
    assert not refused, refused

    masters: dict[str, list[int]] = {name: [] for name in pools}
    for (pool, number, _, _), (_, body) in zip(plan, answers, strict=True):
        if body["role"] == "master":
            masters[pool].append(number)
    assert all(len(m) == 1 for m in masters.values()), masters
    for (pool, _, _, _), (_, body) in zip(plan, answers, strict=True):
        assert body["master_address"] == ip_of(masters[pool][0]), (pool, body)

    views = [{n: call(f"{s.base}/api/v1/pools/{n}", token=pair.token) for n in pools}
             for s in (pair.a, pair.b)]  # fmt: skip
    assert views[0] == views[1]
    for pool in pools:
        status, view = views[0][pool]
        expected = sum(p == pool for p, _, _, _ in plan)
        assert status == 200 and len(view["members"]) == expected, view
        assert view["master_address"] == ip_of(masters[pool][0]), view

    # Each agent repeats its registration on the other server (a lost answer): same answer,
    # nothing recorded twice.
    with ThreadPoolExecutor(len(plan)) as executor:
        replays = list(executor.map(
            lambda i: registration((pair.b, pair.a)[i % 2], plan[i][2], plan[i][1], plan[i][3]),
            range(len(plan))))  # fmt: skip
    for (status, body), (_, first) in zip(replays, answers, strict=True):
        assert status == 200 and body["role"] == first["role"], (body, first)
    joined = events(pair, JOINED)
    with pair.database.scope(write=False) as session:
        ids = set(session.scalars(select(Host.id).where(Host.pool_id.is_not(None))))
    assert set(joined) == ids and set(joined.values()) == {1}, joined


def test_unknown_machines_asking_both_servers_at_once_are_recorded_once(pair: Pair) -> None:
    macs = [f"52:54:02:00:00:{i:02x}" for i in range(UNKNOWN)]
    barrier = threading.Barrier(2 * UNKNOWN)

    def ask(index: int) -> int:
        mac, server = macs[index // 2], (pair.a, pair.b)[index % 2]
        barrier.wait()
        return call(f"{server.base}/boot/ipxe?mac={mac}&uuid=&serial=&arch=x86_64")[0]

    with ThreadPoolExecutor(2 * UNKNOWN) as executor:
        statuses = list(executor.map(ask, range(2 * UNKNOWN)))
    assert statuses == [200] * (2 * UNKNOWN)
    with pair.database.scope(write=False) as session:
        rows = session.execute(select(HostMac.mac, HostMac.host_id).where(HostMac.mac.in_(macs)))
        owners = dict(rows.all())
    assert sorted(owners) == macs and len(set(owners.values())) == UNKNOWN, owners
    for server in (pair.a, pair.b):
        status, body = call(f"{server.base}/api/v1/hosts?state=discovered", token=pair.token)
        assert status == 200
        assert sorted(m for h in body["hosts"] for m in h["macs"] if m in owners) == macs
