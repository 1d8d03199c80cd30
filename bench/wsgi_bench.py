"""The WSGI server under our Flask app: waitress (``serve`` as it runs today) against gunicorn's
threaded workers and granian, on ``/healthz`` and on the answer files of distinct hosts.

Every server serves the same app (:func:`pxe.web.app.create_app`) over the same data directory
and SQLite inventory (10,000 hosts, 1,000 of them ready, as ``bench/http_bench.py`` sets up),
with the same number of worker processes (``--workers``, one per core by default) and of
request threads in each (``--threads``, ``serve``'s default):

* waitress: ``xcp-provision serve`` itself, its HTTP worker processes on ``SO_REUSEPORT``
  sockets (TFTP and ProxyDHCP stay in its main process, TFTP idle here);
* gunicorn: ``-k gthread -w N --threads T``, one listening socket shared by its workers;
* granian: ``--interface wsgi --workers N --blocking-threads T`` (its Rust runtime parses HTTP
  and hands requests to T Python threads per worker);
* rsgi: granian's ``--interface rsgi --workers N``, the app run by a pool of T threads per worker
  (``bench/rsgi_bridge.py``): what granian would give if file bodies went out from Rust.

gunicorn and granian load the app from this module (``bench.wsgi_bench:app``, or ``rsgi_app``),
built from the same ``XCP_PROVISION_*`` settings a ``serve`` worker gets, with the waitress
server's public URL so every server renders the same bytes. All of them run at the bench's own
CPU priority (printed, with each server process's nice value), and the load comes from ``wrk``
(C):

* closed loop: 100 connections asking as fast as answers come back, a new connection for each
  request as an installer makes (``cycle.lua``), on ``/healthz`` and on the answer files of the
  1,000 ready hosts in turn (each request a cold render of another host);
* open loop: the same answer files due at a fixed rate (``--open-rate``), latency counted from
  each request's due time (``open_loop.lua``: see ``bench/http_bench.py`` for how).

Rounds interleave the servers (the order rotates each round), so a neighbour's burst on this
shared 2-core machine falls on one server's run, not on one server; per round each server's
rate is divided by waitress's in the same round. Printed: median and range over the rounds.

    .venv/bin/python bench/wsgi_bench.py [--rounds 5] [--seconds 8] [--open-rate 2000]
    make bench-wsgi   # installs gunicorn and granian (the ``bench`` extra) first
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_bench import (
    Load,
    OpenLoad,
    answer_url,
    open_loop,
    populate,
    unthrottle,
    wrk_paths,
)
from bench.rsgi_bridge import RsgiBridge
from common.runner import start
from pxe.config import Settings, load_settings
from pxe.logging_json import configure_logging
from pxe.web.app import create_app
from tests.support.serve import free_port, serve_process, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
CYCLE_SCRIPT = Path(__file__).resolve().parent / "cycle.lua"
VENV_BIN = Path(sys.executable).parent
SERVERS = ("waitress", "gunicorn", "granian", "rsgi")


def __getattr__(name: str) -> Any:
    """``app`` for gunicorn and granian: what a ``serve`` worker builds, from the environment;
    ``rsgi_app``: the same behind the RSGI bridge."""
    if name not in ("app", "rsgi_app"):
        raise AttributeError(name)
    settings = load_settings()
    configure_logging(settings.log_format)
    app = create_app(settings)
    return app if name == "app" else RsgiBridge(app, settings.http_threads)


@dataclass(frozen=True)
class Running:
    name: str
    base: str
    pid: int


def _other_env(data: Path, public_url: str, metrics: Path) -> dict[str, str]:
    metrics.mkdir(parents=True)
    settings = load_settings(data_dir=data, public_url=public_url)  # as serve: env, then flags
    return {**os.environ, **settings.as_environment(), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


@contextmanager
def _process(name: str, argv: list[Any], env: dict[str, str], port: int) -> Iterator[Running]:
    proc = start(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield Running(name, base, proc.pid)
    finally:
        stop(proc)


@contextmanager
def gunicorn(data: Path, public_url: str, workers: int, threads: int,
             tmp: Path) -> Iterator[Running]:  # fmt: skip
    port = free_port()
    argv = [VENV_BIN / "gunicorn", "-k", "gthread", "-w", workers, "--threads", threads,
            "-b", f"127.0.0.1:{port}", "--backlog", "1024", "--chdir", ROOT,
            "bench.wsgi_bench:app"]  # fmt: skip
    env = _other_env(data, public_url, tmp / "gunicorn-metrics")
    with _process("gunicorn", [str(a) for a in argv], env, port) as running:
        yield running


@contextmanager
def granian(data: Path, public_url: str, workers: int, threads: int,
            tmp: Path) -> Iterator[Running]:  # fmt: skip
    port = free_port()
    argv = [VENV_BIN / "granian", "--interface", "wsgi", "--workers", workers,
            "--blocking-threads", threads, "--host", "127.0.0.1", "--port", port,
            "--backlog", "1024", "--no-ws", "--working-dir", ROOT,
            "bench.wsgi_bench:app"]  # fmt: skip
    env = _other_env(data, public_url, tmp / "granian-metrics")
    with _process("granian", [str(a) for a in argv], env, port) as running:
        yield running


@contextmanager
def rsgi(data: Path, public_url: str, workers: int, threads: int, tmp: Path) -> Iterator[Running]:
    port = free_port()
    argv = [VENV_BIN / "granian", "--interface", "rsgi", "--workers", workers,
            "--host", "127.0.0.1", "--port", port, "--backlog", "1024", "--no-ws",
            "--working-dir", ROOT, "bench.wsgi_bench:rsgi_app"]  # fmt: skip
    env = _other_env(data, public_url, tmp / "rsgi-metrics")
    env["XCP_PROVISION_HTTP_THREADS"] = str(threads)
    with _process("rsgi", [str(a) for a in argv], env, port) as running:
        yield running


@contextmanager
def waitress(data: Path, workers: int, threads: int) -> Iterator[Running]:
    env = {"XCP_PROVISION_HTTP_WORKERS": str(workers), "XCP_PROVISION_HTTP_THREADS": str(threads)}
    with serve_process(data, "--tftp-port", "0", "--no-dhcp", env=env) as (base, proc):
        yield Running("waitress", base, proc.pid)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += process_tree(int(child))
    return found


def nice(pid: int) -> int:
    # /proc/<pid>/stat: the command (field 2) may hold spaces; nice is field 19.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _spread(values: list[float], fmt: str) -> str:
    return (f"{format(statistics.median(values), fmt)} "
            f"({format(min(values), fmt)}-{format(max(values), fmt)})")  # fmt: skip


def report(title: str, figures: dict[str, list[Load]]) -> None:
    print(f"\n{title}: req/s and p99, median (range) over {len(figures['waitress'])} rounds; "
          "ratio = req/s over waitress's in the same round")  # fmt: skip
    for name, loads in figures.items():
        rates = [load.rate for load in loads]
        ratios = [
            load.rate / ref.rate for load, ref in zip(loads, figures["waitress"], strict=True)
        ]
        failed = sum(load.failed for load in loads)
        print(
            f"  {name:<9} {_spread(rates, '6.0f')} req/s   p99 "
            f"{_spread([load.p99_ms for load in loads], '5.1f')} ms   "
            f"ratio {_spread(ratios, '.2f')}" + (f"   FAILED {failed}" if failed else "")
        )


def report_open(rate: float, figures: dict[str, list[OpenLoad]]) -> None:
    print(
        f"\nanswer files due at {rate:.0f}/s (open loop, latency from the due time): "
        "median (range) over the rounds"
    )
    for name, loads in figures.items():
        failed = sum(load.failed for load in loads)
        print(f"  {name:<9} answered {_spread([load.rate for load in loads], '6.0f')} req/s   "
              f"p50 {_spread([load.p50_ms for load in loads], '5.1f')} ms   "
              f"p99 {_spread([load.p99_ms for load in loads], '6.1f')} ms   "
              f"max {_spread([load.max_ms for load in loads], '6.0f')} ms   "
              f"unanswered at the end {sum(load.unanswered for load in loads)}"
              + (f"   FAILED {failed}" if failed else ""))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8, help="per run")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=Settings().http_threads)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--open-rate", type=float, default=2000.0)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="which to measure, comma-separated (waitress always)")  # fmt: skip
    args = parser.parse_args()
    servers = ("waitress", *(s for s in SERVERS[1:] if s in args.servers.split(",")))
    tools = {"gunicorn": "gunicorn", "granian": "granian", "rsgi": "granian"}
    for tool in sorted({tools[name] for name in servers[1:]}):
        if not (VENV_BIN / tool).exists():
            raise SystemExit(f"{tool} is not in {VENV_BIN}: run `make bench-wsgi`, which "
                             "installs the bench extra")  # fmt: skip

    unthrottle()
    print(f"load average at start: {load_average()}  (nproc {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="xcp-wsgi-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        data = tmp / "data"
        macs = populate(data, args.hosts)
        ours = stack.enter_context(waitress(data, args.workers, args.threads))
        # Every ready host's answer-file URL, its token issued once by the boot lookup.
        paths = [answer_url(ours.base, mac).removeprefix(ours.base) for mac in macs[::10][:1000]]
        others = {"gunicorn": gunicorn, "granian": granian, "rsgi": rsgi}
        running = {"waitress": ours} | {
            name: stack.enter_context(
                others[name](data, ours.base, args.workers, args.threads, tmp))
            for name in servers[1:]
        }  # fmt: skip
        bench_nice = os.getpriority(os.PRIO_PROCESS, 0)
        print(f"CPU priority: the bench and wrk at nice {bench_nice}; the servers' processes:")
        for name, server in running.items():
            tree = process_tree(server.pid)
            print(f"  {name:<9} {len(tree)} processes, nice "
                  f"{' '.join(str(nice(pid)) for pid in tree)}")  # fmt: skip
        same = {name: _digest(server.base + paths[0]) for name, server in running.items()}
        if len(set(same.values())) != 1:
            raise SystemExit(f"the servers answer different bytes for {paths[0]}: {same}")

        def closed(path_list: list[str], seconds: int) -> Callable[[Running], Load]:
            return lambda s: wrk_paths(s.base, path_list, args.clients, tmp, CYCLE_SCRIPT, seconds)

        for server in running.values():  # warm-up: templates compiled, caches filled
            closed(paths, 3)(server)
            closed(["/healthz"], 2)(server)

        health: dict[str, list[Load]] = {name: [] for name in servers}
        answers: dict[str, list[Load]] = {name: [] for name in servers}
        arrivals: dict[str, list[OpenLoad]] = {name: [] for name in servers}
        for i in range(args.rounds):
            order = servers[i % len(servers):] + servers[:i % len(servers)]  # fmt: skip
            for name in order:
                server = running[name]
                health[name].append(closed(["/healthz"], args.seconds)(server))
                answers[name].append(closed(paths, args.seconds)(server))
                arrivals[name].append(open_loop(server.base, paths, args.open_rate,
                                                args.clients, tmp, args.seconds))  # fmt: skip
                print(f"round {i + 1} {name:<9} /healthz {health[name][-1].rate:6.0f} req/s "
                      f"p99 {health[name][-1].p99_ms:5.1f} ms   answer files "
                      f"{answers[name][-1].rate:6.0f} req/s p99 {answers[name][-1].p99_ms:5.1f} ms"
                      f"   open loop p99 {arrivals[name][-1].p99_ms:6.1f} ms",
                      flush=True)  # fmt: skip

    print(f"\n{len(paths)} distinct hosts' answer files; {args.workers} worker processes x "
          f"{args.threads} threads per server; wrk, {args.clients} connections, a new connection "
          f"per request, {args.seconds} s per run; order rotating each round")  # fmt: skip
    report("/healthz, closed loop", health)
    report("answer files (each a cold render), closed loop", answers)
    report_open(args.open_rate, arrivals)
    print(f"\nload average at the end: {load_average()}")


def _digest(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return hashlib.sha256(resp.read()).hexdigest()


if __name__ == "__main__":
    main()
