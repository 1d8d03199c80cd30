"""What each kind of request costs the app itself, with no HTTP server around it.

The HTTP-bound goals compare whole requests through ``serve`` (its workers, waitress, the
kernel's sockets) with a reference: ``/healthz`` for registrations, nginx for answer files.
This bench takes the server away and calls the Flask app of ``serve`` directly, one request
after the other on one thread, so each figure is the app's own CPU for that request: what is
left to cut in our code, apart from what every request pays to the server. Measured:

* ``GET /healthz``: the app's floor (routing, a database round trip, the access log's check);
* a boot script: a ready host's first iPXE lookup, which hands out its install token;
* a cold answer file: a ready host's, its token issued by the boot lookup beforehand and
  claimed by this request, rendered and validated;
* a build-done: a ready host's, after its boot lookup and answer file;
* a registration: an installed host's first boot calling home with the first-boot agent's
  facts, into one pool.

The first four are a rack host's requests to ``serve``, its kernel and initrd aside. Every
host is asked for once, as in a rack. The kinds alternate within each round, on
the same data directory and SQLite inventory (``bench/http_bench.py``'s hosts, and installed
hosts for the registrations), and the access log is written to ``/dev/null``. Printed: the
median and range over the rounds of the microseconds per request and of each kind's ratio to
``/healthz`` in the same round.

    .venv/bin/python bench/app_cost_bench.py [--rounds 5] [--requests 200] [--hosts 30000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.test import EnvironBuilder

from bench.http_bench import answer_file_url, unthrottle
from bench.http_bench import populate as populate_answer_files
from bench.register_load import populate as populate_installed
from pxe.config import load_settings
from pxe.db.session import Database
from pxe.logging_json import configure_logging
from pxe.web.app import create_app
from tests.support.registering import facts

# Registering hosts are numbered past the ready hosts, so their MACs never meet.
FIRST_REGISTERING = 100_001
CLIENT = "127.0.0.1"

Environ = dict[str, Any]


def environ(path: str, method: str = "GET", body: object = None, token: str = "") -> Environ:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body) if body is not None else None
    return EnvironBuilder(
        path=path, method=method, headers=headers, data=data,
        content_type="application/json" if data else None,
        base_url=f"http://{CLIENT}:8080", environ_base={"REMOTE_ADDR": CLIENT},
    ).get_environ()  # fmt: skip


class App:
    """``serve``'s app, called as its WSGI server would call it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self.statuses: list[str] = []

    def _start_response(self, status: str, headers: object, exc_info: object = None) -> None:
        self.statuses.append(status)

    def call(self, env: Environ) -> bytes:
        return b"".join(self._app(env, self._start_response))

    def seconds_each(self, envs: list[Environ]) -> float:
        """Seconds per request over ``envs``, each answered 200 (or the bench stops)."""
        self.statuses.clear()
        began = time.perf_counter()
        for env in envs:
            self.call(env)
        seconds = (time.perf_counter() - began) / len(envs)
        wrong = {s for s in self.statuses if not s.startswith("200")}
        if wrong:
            raise SystemExit(f"answered {sorted(wrong)}, not 200: the bench measures answers")
        return seconds


def boot_environ(mac: str) -> Environ:
    return environ(f"/boot/ipxe?mac={mac}")


def answer_file_environs(app: App, macs: list[str]) -> list[Environ]:
    """Each ready host's answer-file request, its token issued by a boot lookup now."""
    found = []
    for mac in macs:
        script = app.call(boot_environ(mac)).decode()
        parts = urlsplit(answer_file_url(script, mac))
        found.append(environ(f"{parts.path}?{parts.query}"))
    return found


def build_done_environs(app: App, macs: list[str]) -> list[Environ]:
    """Each ready host's build-done, its boot lookup and answer file made now, as an
    installer makes them before it."""
    found = []
    for answer_file in answer_file_environs(app, macs):
        app.call(answer_file)
        token = parse_qs(answer_file["QUERY_STRING"])["token"][0]
        found.append(environ("/api/v1/installs/done", "POST", {}, token))
    return found


def spread(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):7.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="of each kind per round")
    parser.add_argument("--hosts", type=int, default=30_000, help="in the inventory at start")
    args = parser.parse_args()
    unthrottle()
    wanted = args.rounds * args.requests  # of each kind, every one a host of its own
    with tempfile.TemporaryDirectory(prefix="xcp-app-cost-") as tmp:
        data = Path(tmp) / "data"
        macs = populate_answer_files(data, max(args.hosts, wanted * 30))  # one in ten ready
        settings = load_settings(data_dir=data)
        configure_logging(settings.log_format)
        for handler in logging.getLogger().handlers:
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the whole run)
        database = Database(settings.database)
        app = App(create_app(settings))
        ready = iter(macs[::10])
        scripts = [boot_environ(next(ready)) for _ in range(wanted)]
        answer_files = answer_file_environs(app, [next(ready) for _ in range(wanted)])
        build_dones = build_done_environs(app, [next(ready) for _ in range(wanted)])
        installed = populate_installed(database, FIRST_REGISTERING, wanted, ["bench"])
        registrations = [
            environ("/api/v1/register", "POST", facts(number), token) for number, token in installed
        ]
        app.seconds_each([environ("/healthz") for _ in range(args.requests)])  # warm-up
        kinds = ("healthz", "boot script", "answer file", "build-done", "registration")
        micros: dict[str, list[float]] = {kind: [] for kind in kinds}
        for number in range(args.rounds):
            batch = slice(number * args.requests, (number + 1) * args.requests)
            envs = {
                "healthz": [environ("/healthz") for _ in range(args.requests)],
                "boot script": scripts[batch],
                "answer file": answer_files[batch],
                "build-done": build_dones[batch],
                "registration": registrations[batch],
            }
            order = kinds[number % len(kinds):] + kinds[:number % len(kinds)]  # fmt: skip
            for kind in order:
                micros[kind].append(app.seconds_each(envs[kind]) * 1e6)
        database.dispose()
    print(f"{args.requests} requests of each kind per round, {args.rounds} rounds, one thread, "
          f"no HTTP server; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    for kind in kinds:
        ratios = [m / h for m, h in zip(micros[kind], micros["healthz"], strict=True)]
        print(f"  {kind:<13} {spread(micros[kind], ' us')} a request, "
              f"{spread(ratios, 'x')} /healthz's")  # fmt: skip


if __name__ == "__main__":
    main()
