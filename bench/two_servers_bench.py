"""Two servers, one database: a rack and a wave of registrations split between two ``serve``
processes on one PostgreSQL, against one server taking all of it.

Both servers run as the README sets them up for several servers (separate data directories,
the key files shared, the same release in each, ``--no-dhcp``, TFTP on their own ports, one
throwaway PostgreSQL). Each round runs the same load twice, the order alternating: once all of
it against server A alone, once half against A and half against B.

- The rack: every host at once, each one bash process driving curl (``bench/rack_host.sh``:
  TFTP loader, iPXE script, kernel, initrd, answer file, build-done); its rate is hosts per
  second of the rack's wall time. Between runs every host is made ready again (not timed).
- Registrations: fresh installed hosts in a few pools, their first-boot registrations sent by
  two ``curl --parallel`` processes (C clients, the same two in both setups, each half of the
  hosts); the rate is registrations per second of wall time.

The ratio per round is the split rate over the one-server rate (goal 1.6x). Checks printed at
the end: every rack host installed once (one ``done`` event each run), every registration
answered 200 and recorded once, one master per pool in the answers.

    .venv/bin/python bench/two_servers_bench.py [--hosts 200] [--registrations 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import func, select

from bench import register_load
from bench.cpu import Cpu, cpu_use
from common.runner import run, start
from pxe.bmc.crypto import cipher, key_path
from pxe.db.models import Event, Host, Pool
from pxe.db.session import Database
from pxe.store.lifecycle import State
from pxe.store.tokens import create_api_token
from pxe.web.dashboard.login import SECRET_FILE, secret_key
from tests.support.postgres import postgres_cluster
from tests.support.serve import free_port, serve_process

# A bench measures how fast the servers answer, not the install cap: every host may install.
os.environ.setdefault("XCP_PROVISION_MAX_CONCURRENT_INSTALLS", "1000000")
os.environ.setdefault("XCP_PROVISION_DISCOVERY_RATE", "0")

HOST_CLIENT = Path(__file__).resolve().parent / "rack_host.sh"
GOAL = 1.6
POOLS = 4  # pools per registration run
PARALLEL = 250  # transfers in flight per curl process


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # host:port
    tftp_port: int
    pid: int


@dataclass(frozen=True)
class Run:
    seconds: float
    count: int
    failures: list[str]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def http(address: str, method: str, path: str, token: str, body: dict | None = None) -> int:
    """One API call by curl (no Python HTTP client in the bench process); its status."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
            "-H", f"Authorization: Bearer {token}", f"http://{address}{path}"]  # fmt: skip
    if body is not None:
        args[1:1] = ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    return int(run(args, timeout=60).stdout)


@contextmanager
def servers(tmp: Path, url: str, kernel: bytes, initrd: bytes) -> Iterator[list[Server]]:
    """A and B on one database, set up as the README says; the release's installer files
    replaced by ``kernel`` and ``initrd`` (the same bytes in both data directories)."""
    first, second = tmp / "a", tmp / "b"
    secret_key(first)
    cipher(first)
    second.mkdir(parents=True)
    for name in (SECRET_FILE, key_path(first).name):
        shutil.copy2(first / name, second / name)
    env = {"XCP_PROVISION_DATABASE_URL": url}
    with ExitStack() as stack:
        started = []
        for data in (first, second):
            tftp = free_port(socket.SOCK_DGRAM)
            log = stack.enter_context(open(tmp / f"serve-{data.name}.log", "wb"))
            args = ("--tftp-port", str(tftp), "--no-dhcp", "--demo")
            base, proc = stack.enter_context(serve_process(data, *args, env=env, output=log))
            release = data / "releases" / "demo"
            (release / "installer-vmlinuz").write_bytes(kernel)
            (release / "installer-initrd.img").write_bytes(initrd)
            started.append(Server(data.name.upper(), base.removeprefix("http://"), tftp, proc.pid))
        yield started


def rack(targets: list[Server], macs: list[str]) -> Run:
    """Every host at once, host i booting from ``targets[i % len(targets)]``."""
    began = time.perf_counter()
    procs = []
    for i, mac in enumerate(macs):
        server = targets[i % len(targets)]
        procs.append(start(["bash", HOST_CLIENT, mac, str(server.tftp_port), server.address],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    outputs = [proc.communicate() for proc in procs]
    seconds = time.perf_counter() - began
    failures = [f"{mac}: {err.decode()[-200:]}" for mac, proc, (_, err)
                in zip(macs, procs, outputs, strict=True) if proc.returncode != 0]  # fmt: skip
    return Run(seconds, len(macs), failures)


def make_ready(server: Server, token: str, hosts: int) -> None:
    """Every rack host ready again (as a reinstall does), so the next run installs again."""
    for i in range(hosts):
        status = http(server.address, "POST", f"/api/v1/hosts/bench{i:03d}/reinstall", token, {})
        if status != 200:
            raise SystemExit(f"could not make bench{i:03d} ready: HTTP {status}")


def registrations(targets: list[Server], hosts: list[tuple[int, str]], work: Path) -> Run:
    """Two curl processes, each half of the hosts, the first against ``targets[0]`` and the
    second against ``targets[-1]``; then the answers checked."""
    out = work / "answers"
    batches = [register_load.registrations(server.address, half, out)
               for half, server in zip((hosts[0::2], hosts[1::2]), (targets[0], targets[-1]),
                                       strict=True)]  # fmt: skip
    wave = register_load.fire(batches, work, PARALLEL)
    failures = [] if wave.all_ok() else [f"statuses {dict(wave.statuses)}"]
    roles = Counter(answer.get("role") for batch in batches
                    for answer in register_load.answers(batch))  # fmt: skip
    if roles != Counter({"master": POOLS, "member": len(hosts) - POOLS}):
        failures.append(f"roles {dict(roles)}, expected {POOLS} masters")
    return Run(wave.seconds, len(hosts), failures)


def recorded(database: Database, tag: str, expected: int) -> list[str]:
    """Every registration of the run recorded once: in a pool, one join event each."""
    with database.scope(write=False) as session:
        ours = Pool.name.like(f"{tag}-%")
        hosts = select(Host.id).join(Pool, Host.pool_id == Pool.id).where(ours)
        in_pool = session.scalar(select(func.count()).select_from(
            hosts.where(Host.state == State.IN_POOL.value).subquery()))  # fmt: skip
        joins = session.scalar(select(func.count()).select_from(Event).where(
            Event.kind == "pool-joined", Event.host_id.in_(hosts)))  # fmt: skip
    if in_pool == joins == expected:
        return []
    return [f"{tag}: {in_pool} in a pool, {joins} join events, expected {expected}"]


def installed_once(database: Database, expected_each: int) -> list[str]:
    with database.scope(write=False) as session:
        counts = Counter(dict(session.execute(
            select(Event.host_id, func.count()).where(Event.kind == "done")
            .group_by(Event.host_id)).all()))  # fmt: skip
    wrong = {k: v for k, v in counts.items() if v != expected_each}
    return [f"hosts with a done count other than {expected_each}: {wrong}"] if wrong else []


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kernel-mib", type=float, default=1)
    parser.add_argument("--initrd-mib", type=float, default=2)
    args = parser.parse_args()
    load = os.getloadavg()
    kernel = os.urandom(int(args.kernel_mib * 1024 * 1024))
    initrd = os.urandom(int(args.initrd_mib * 1024 * 1024))
    macs = [f"52:54:01:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(args.hosts)]
    with tempfile.TemporaryDirectory(prefix="two-servers-bench-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        cluster = stack.enter_context(postgres_cluster())
        url = cluster.new_database()
        a, b = stack.enter_context(servers(base, url, kernel, initrd))
        database = Database(url)
        with database.scope() as session:
            token = create_api_token(session, "two-servers-bench")
        for i, mac in enumerate(macs):
            body = {"mac": mac, "hostname": f"bench{i:03d}", "profile": "demo"}
            if http(a.address, "POST", "/api/v1/hosts", token, body) != 201:
                raise SystemExit(f"could not add host {mac}")
        pg_pid = int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])
        nice = ", ".join(f"{name} {os.getpriority(os.PRIO_PROCESS, pid)}"
                         for name, pid in (("serve A", a.pid), ("serve B", b.pid),
                                           ("postgres", pg_pid)))  # fmt: skip
        print(
            f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            f"at start; nice: {nice}"
        )
        print(
            f"rack: {args.hosts} hosts at once (bash + curl each; kernel {len(kernel)} B, "
            f"initrd {len(initrd)} B); registrations: {args.registrations} at once into "
            f"{POOLS} new pools (2 curl --parallel processes, {PARALLEL} in flight each); "
            f"{args.rounds} rounds, one server (A) and two (A+B) alternating first"
        )
        setups = {"one": [a], "two": [a, b]}
        runs: dict[tuple[str, str], list[Run]] = {}
        cpus: dict[tuple[str, str], list[Cpu]] = {}
        roots = {"serve A": a.pid, "serve B": b.pid, "postgres": pg_pid}
        failures: list[str] = []
        number, done_runs = 1, 0
        for round_number in range(args.rounds):
            order = ["one", "two"] if round_number % 2 == 0 else ["two", "one"]
            for setup in order:
                targets = setups[setup]
                with cpu_use(roots) as rack_cpu:
                    measured = rack(targets, macs)
                done_runs += 1
                make_ready(a, token, args.hosts)
                tag = f"r{round_number}-{setup}"
                pools = [f"{tag}-{p}" for p in range(POOLS)]
                hosts = register_load.populate(database, number, args.registrations, pools)
                number += args.registrations
                with cpu_use(roots) as register_cpu:
                    registered = registrations(targets, hosts, base / tag)
                failures += measured.failures[:3] + registered.failures
                failures += recorded(database, tag, args.registrations)
                runs.setdefault((setup, "rack"), []).append(measured)
                runs.setdefault((setup, "register"), []).append(registered)
                cpus.setdefault((setup, "rack"), []).append(rack_cpu["cpu"])
                cpus.setdefault((setup, "register"), []).append(register_cpu["cpu"])
                print(
                    f"  round {round_number + 1} {setup:>3} server(s): rack "
                    f"{measured.seconds:6.2f} s ({measured.rate:5.1f} hosts/s; "
                    f"{rack_cpu['cpu']}), registrations {registered.seconds:6.2f} s "
                    f"({registered.rate:5.1f}/s; {register_cpu['cpu']})",
                    flush=True,
                )
        failures += installed_once(database, done_runs)
        database.dispose()
        print(f"load average {os.getloadavg()[0]:.2f} after")
        for kind, unit in (("rack", "hosts/s"), ("register", "registrations/s")):
            one = [r.rate for r in runs[("one", kind)]]
            two = [r.rate for r in runs[("two", kind)]]
            ratios = [t / o for t, o in zip(two, one, strict=True)]
            met = sum(r >= GOAL for r in ratios)
            print(
                f"  {kind:<8} one server {spread(one)} {unit}, two {spread(two)} {unit}; "
                f"two / one per round {spread(ratios, 'x')} (goal {GOAL}x: "
                f"{met} of {len(ratios)} rounds)"
            )
            for setup, count in (("one", runs[("one", kind)][0].count),
                                 ("two", runs[("two", kind)][0].count)):  # fmt: skip
                per = {name: statistics.median(c.seconds[name] for c in cpus[(setup, kind)])
                       * 1000 / count for name in roots}  # fmt: skip
                busy = statistics.median(c.busy for c in cpus[(setup, kind)])
                print(f"    {setup} server(s): CPU ms each, median: "
                      + ", ".join(f"{name} {value:.1f}" for name, value in per.items())
                      + f"; machine {busy:.0%} busy")  # fmt: skip
        verdict = "yes" if not failures else "NO: " + "; ".join(failures)
        print(
            f"  every host installed once, every registration recorded once, one master per "
            f"pool: {verdict}"
        )
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
