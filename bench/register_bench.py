"""Registration: 1,000 first-boot agents calling home at once into one pool.

The server runs as operators run it (``xcp-provision serve`` in its own process, waitress), on
SQLite in WAL mode by default or on a throwaway PostgreSQL with ``--postgres``; ``--dns`` adds a
real BIND 9 so every registration also sends its RFC 2136 updates. All agents start together
(one thread each, released by a barrier) and each times its own request, queueing included.

Reference measured in the same run, with the same client: the same number of concurrent
``GET /healthz`` (the floor of the Python HTTP stack and a database round trip).

Checks printed at the end: no registration lost (every answer 200 and every host recorded once,
in the pool) and exactly one master, in the answers and in the inventory.

    .venv/bin/python bench/register_bench.py [--hosts 1000] [--postgres] [--dns]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from pxe.config import Settings
from pxe.db.models import Host, HostMac, utcnow
from pxe.db.session import Database
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool
from pxe.store.tokens import hash_token, new_token
from tests.support.bind import BindServer, running_bind
from tests.support.postgres import postgres_cluster
from tests.support.registering import facts, ip_of, mac_of
from tests.support.serve import serve_process

# A bench measures how fast the server answers, not the install cap: every host may install.
os.environ.setdefault("XCP_PROVISION_MAX_CONCURRENT_INSTALLS", "1000000")
os.environ.setdefault("XCP_PROVISION_DISCOVERY_RATE", "0")

POOL = "bench"


@dataclass(frozen=True)
class Load:
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


def populate(database: Database, hosts: int) -> dict[int, str]:
    """``hosts`` installed hosts in pool ``bench``, each with an install token (bulk inserts)."""
    database.migrate()
    tokens = {number: new_token("xpi_") for number in range(1, hosts + 1)}
    with database.scope() as session:
        pool = create_pool(session, POOL)
        now = utcnow()
        session.execute(
            insert(Host),
            [
                {"id": n, "pool_id": pool.id, "state": State.INSTALLED.value, "state_reason": "",
                 "failure_log": "", "facts": {}, "refusal_reasons": [], "token_spent": False,
                 "install_token_hash": hash_token(token), "created_at": now, "updated_at": now}
                for n, token in tokens.items()
            ],
        )  # fmt: skip
        session.execute(insert(HostMac), [{"host_id": n, "mac": mac_of(n)} for n in tokens])
    return tokens


def call(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def at_once(requests: list[urllib.request.Request], keep: Callable[[int, bytes], None]) -> Load:
    """Send every request from its own thread, all released together; time each one."""
    barrier = threading.Barrier(len(requests) + 1)
    latencies: list[float] = [0.0] * len(requests)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client(index: int) -> None:
        barrier.wait()
        began = time.perf_counter()
        status, body = call(requests[index])
        latencies[index] = (time.perf_counter() - began) * 1000
        with lock:
            statuses[status] += 1
            keep(index, body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return Load(time.perf_counter() - began, latencies, statuses)


def registration(base: str, token: str, number: int) -> urllib.request.Request:
    return urllib.request.Request(
        f"{base}/api/v1/register",
        data=json.dumps(facts(number)).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )


def line(name: str, load: Load, reference: Load | None = None) -> str:
    ratio = f"  {reference.rate / load.rate:5.2f}x slower" if reference else ""
    return (f"  {name:<40} {load.rate:7.0f} req/s  p50 {load.percentile(50):6.0f} ms"
            f"  p99 {load.percentile(99):6.0f} ms{ratio}")  # fmt: skip


def check(database: Database, answers: dict[int, dict], hosts: int, load: Load) -> list[str]:
    """The promises, checked in the answers and in the inventory; returns what failed."""
    failures = []
    if load.statuses != Counter({200: hosts}):
        failures.append(f"statuses {dict(load.statuses)}, expected {hosts} x 200")
    roles = Counter(answer.get("role") for answer in answers.values())
    if roles != Counter({"master": 1, "member": hosts - 1}):
        failures.append(f"roles in the answers {dict(roles)}")
    with database.scope(write=False) as session:
        recorded = session.scalar(select(func.count()).select_from(Host))
        in_pool = session.scalar(
            select(func.count()).select_from(Host).where(Host.state == State.IN_POOL.value)
        )
        distinct = session.scalar(select(func.count(func.distinct(HostMac.mac))))
    if not recorded == in_pool == distinct == hosts:
        failures.append(f"{recorded} hosts, {in_pool} in the pool, {distinct} distinct MACs")
    return failures


def run_bench(
    args: argparse.Namespace,
    tmp: Path,
    database_url: str,
    env: dict[str, str],
    bind: BindServer | None,
) -> int:
    data = tmp / "data"
    url = database_url or Settings(data_dir=data).database
    database = Database(url)
    t0 = time.monotonic()
    tokens = populate(database, args.hosts)
    print(f"inventory: {args.hosts} installed hosts in pool {POOL!r} on "
          f"{database.engine.dialect.name} ({time.monotonic() - t0:.1f} s to set up)")  # fmt: skip
    answers: dict[int, dict] = {}
    numbers = list(tokens)

    def keep(index: int, body: bytes) -> None:
        with contextlib.suppress(ValueError):
            answers[numbers[index]] = json.loads(body)

    server_env = {**env, **({"XCP_PROVISION_DATABASE_URL": url} if database_url else {})}
    with serve_process(data, "--tftp-port", "0", "--no-dhcp", env=server_env) as (base, _):
        health = [urllib.request.Request(f"{base}/healthz") for _ in numbers]
        at_once(health[: min(200, len(health))], lambda *_: None)  # warm-up
        floor = at_once(health, lambda *_: None)
        load = at_once([registration(base, tokens[n], n) for n in numbers], keep)
    failures = check(database, answers, args.hosts, load)
    if bind is not None:
        missing = [n for n in numbers if bind.query(f"node{n:04d}.xcp.test.", "A") != [ip_of(n)]]
        if missing:
            failures.append(f"{len(missing)} hosts without their A record")
    database.dispose()

    dns = " with DNS updates (BIND)" if args.dns else ""
    print(f"\n{args.hosts} concurrent registrations into one pool{dns}, one client thread each")
    print(line("POST /api/v1/register", load, floor))
    print(line("GET /healthz (reference)", floor))
    print(f"  wall time {load.seconds:.2f} s; throughput {load.rate:.0f} registrations/s")
    promise = "none lost, one master" + (", every A record in DNS" if bind else "")
    print(f"  {promise}: {'yes' if not failures else 'NO: ' + '; '.join(failures)}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true", help="A throwaway PostgreSQL cluster.")
    parser.add_argument("--dns", action="store_true", help="Also update a real BIND 9 (TSIG).")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xcp-register-bench-")))
        database_url, env, bind = "", {}, None
        if args.postgres:
            database_url = stack.enter_context(postgres_cluster()).new_database()
        if args.dns:
            bind = stack.enter_context(running_bind(tmp / "bind"))
            env = {f"XCP_PROVISION_DNS_{key.upper()}": str(value)
                   for key, value in bind.settings_mapping().items()}  # fmt: skip
            env["XCP_PROVISION_DNS_KEY_FILE"] = env.pop("XCP_PROVISION_DNS_SECRET_FILE")
            env["XCP_PROVISION_DNS_KEY_ALGORITHM"] = env.pop("XCP_PROVISION_DNS_ALGORITHM")
        return run_bench(args, tmp, database_url, env, bind)


if __name__ == "__main__":
    sys.exit(main())
