"""Registration: 1,000 first-boot agents calling home at once into one pool.

The server runs as operators run it (``xcp-provision serve`` in its own process, waitress), on
SQLite in WAL mode by default or on a throwaway PostgreSQL with ``--postgres``; ``--dns`` adds a
real BIND 9 so every registration also sends its RFC 2136 updates. The agents are two
``curl --parallel`` processes (``bench/register_load.py``), every request in flight at once.

Reference measured in the same round, with the same clients and the same server: as many
concurrent ``GET /healthz`` (the floor of the Python HTTP stack and a database round trip).
Each round registers fresh installed hosts into a new pool; the two waves alternate which goes
first, and the ratio (registration wall time over the reference's) is taken per round. Goal:
2x. Every process runs at the same priority (printed).

Checks printed at the end: no registration lost (every answer 200 and every host recorded once,
in its pool) and exactly one master per pool, in the answers and in the inventory.

    .venv/bin/python bench/register_bench.py [--hosts 1000] [--rounds 5] [--postgres] [--dns]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.cpu import Cpu, cpu_use
from bench.register_load import Transfer, Wave, answers, fire, populate, registrations
from pxe.config import Settings
from pxe.db.models import Host, HostMac, Pool
from pxe.db.session import Database
from pxe.store.lifecycle import State
from tests.support.bind import BindServer, running_bind
from tests.support.postgres import postgres_cluster
from tests.support.registering import ip_of
from tests.support.serve import serve_process

# A bench measures how fast the server answers, not the install cap: every host may install.
os.environ.setdefault("XCP_PROVISION_MAX_CONCURRENT_INSTALLS", "1000000")
os.environ.setdefault("XCP_PROVISION_DISCOVERY_RATE", "0")

GOAL = 2.0
CLIENTS = 2  # curl processes, each half of a wave


def halves(transfers: list[Transfer]) -> list[list[Transfer]]:
    return [transfers[i::CLIENTS] for i in range(CLIENTS)]


def recorded(database: Database, pool: str, expected: int) -> list[str]:
    """Every host of ``pool`` in it once, with one master, as the inventory has it."""
    with database.scope(write=False) as session:
        pool_row = session.scalars(select(Pool).where(Pool.name == pool)).one()
        members = select(Host.id).where(Host.pool_id == pool_row.id)
        in_pool = session.scalar(select(func.count()).select_from(
            members.where(Host.state == State.IN_POOL.value).subquery()))  # fmt: skip
        macs = session.scalar(select(func.count(func.distinct(HostMac.mac))).where(
            HostMac.host_id.in_(members)))  # fmt: skip
        master = pool_row.master_host_id
    failures = []
    if not in_pool == macs == expected:
        failures.append(f"{pool}: {in_pool} in the pool, {macs} distinct MACs, not {expected}")
    if master is None:
        failures.append(f"{pool}: no master in the inventory")
    return failures


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def line(name: str, waves: list[Wave], cpus: list[Cpu], count: int) -> str:
    rate = spread([w.rate for w in waves])
    p50 = statistics.median(w.percentile(50) for w in waves)
    p99 = [w.percentile(99) for w in waves]
    busy = statistics.median(c.busy for c in cpus)
    per = spread([c.seconds["serve"] * 1000 / count for c in cpus], " ms")
    return (f"  {name:<26} {rate} req/s; p50 {p50:.0f} ms, p99 {statistics.median(p99):.0f} "
            f"[{min(p99):.0f}-{max(p99):.0f}] ms; serve's CPU {per} a request, machine "
            f"{busy:.0%} busy")  # fmt: skip


def measured(wave: Callable[[], Wave], serve: int, cpus: list[Cpu]) -> Wave:
    """``wave`` run, the CPU it took appended to ``cpus``: whether a wave waits for the CPU
    (the machine busy) or for something else (SQLite's one writer)."""
    with cpu_use({"serve": serve}) as used:
        result = wave()
    cpus.append(used["cpu"])
    return result


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
    database.migrate()
    server_env = {**env, **({"XCP_PROVISION_DATABASE_URL": url} if database_url else {})}
    floors: list[Wave] = []
    waves: list[Wave] = []
    floor_cpus: list[Cpu] = []
    wave_cpus: list[Cpu] = []
    failures: list[str] = []
    with serve_process(data, "--tftp-port", "0", "--no-dhcp", env=server_env) as (base, proc):
        address = base.removeprefix("http://")
        health = [Transfer(f"{base}/healthz") for _ in range(args.hosts)]
        nice = os.getpriority(os.PRIO_PROCESS, proc.pid)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; nice: "
              f"serve {nice}, curl {os.getpriority(os.PRIO_PROCESS, 0)}; "
              f"{database.engine.dialect.name}; {args.hosts} requests at once per wave from "
              f"{CLIENTS} curl --parallel processes")  # fmt: skip
        fire(halves(health[:200]), tmp / "warm-up", args.hosts)
        number = 1
        for round_number in range(args.rounds):
            pool = f"bench-{round_number}"
            hosts = populate(database, number, args.hosts, [pool])
            number += args.hosts
            transfers = registrations(address, hosts, tmp / pool)
            work = tmp / f"round-{round_number}"
            health_wave = partial(fire, halves(health), work / "healthz", args.hosts)
            register_wave = partial(fire, halves(transfers), work / "register", args.hosts)
            if round_number % 2 == 0:
                floor = measured(health_wave, proc.pid, floor_cpus)
                wave = measured(register_wave, proc.pid, wave_cpus)
            else:
                wave = measured(register_wave, proc.pid, wave_cpus)
                floor = measured(health_wave, proc.pid, floor_cpus)
            floors.append(floor)
            waves.append(wave)
            roles = Counter(answer.get("role") for answer in answers(transfers))
            if not wave.all_ok():
                failures.append(f"{pool}: statuses {dict(wave.statuses)}")
            if roles != Counter({"master": 1, "member": args.hosts - 1}):
                failures.append(f"{pool}: roles in the answers {dict(roles)}")
            failures += recorded(database, pool, args.hosts)
            print(f"  round {round_number + 1}: registrations {wave.seconds:.2f} s, /healthz "
                  f"{floor.seconds:.2f} s: {wave.seconds / floor.seconds:.2f}x", flush=True)
    if bind is not None:
        last = range(number - args.hosts, number)
        missing = [n for n in last if bind.query(f"node{n:04d}.xcp.test.", "A") != [ip_of(n)]]
        if missing:
            failures.append(f"{len(missing)} hosts of the last round without their A record")
    database.dispose()

    dns = " with DNS updates (BIND)" if args.dns else ""
    ratios = [w.seconds / f.seconds for w, f in zip(waves, floors, strict=True)]
    met = sum(r <= GOAL for r in ratios)
    print(f"\n{args.hosts} concurrent registrations into one pool{dns}, {args.rounds} rounds "
          "(median [range])")  # fmt: skip
    print(line("POST /api/v1/register", waves, wave_cpus, args.hosts))
    print(line("GET /healthz (reference)", floors, floor_cpus, args.hosts))
    print(f"  registrations / reference, wall time per round: {spread(ratios, 'x')} "
          f"(goal {GOAL}x: {met} of {len(ratios)} rounds)")  # fmt: skip
    promise = "none lost, one master" + (", every A record in DNS" if bind else "")
    print(f"  {promise}: {'yes' if not failures else 'NO: ' + '; '.join(failures)}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
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
