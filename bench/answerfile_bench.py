"""Per-request cost of ``GET /answerfile/<id>?token=...``, in-process (Flask's test client).

No sockets, no waitress, no client process: what is left is our Python code per request, which
is what the HTTP goal (2,000 answer files a second on two cores) is spent on. The inventory holds
10,000 hosts as in ``bench/http_bench.py``; every tenth is ready and gets its own install token.
Reference measured in the same run: ``/healthz`` (Flask, a session and ``SELECT 1``).

* one host: the same host's answer file again and again (the best case: warm caches);
* distinct hosts: 1,000 ready hosts, each fetching its own answer file once (the cold path of
  a rack installing: every request is a host the server has not answered before).

    .venv/bin/python bench/answerfile_bench.py [--hosts 10000] [--requests 2000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask.testing import FlaskClient
from sqlalchemy import update

from bench.http_bench import populate
from pxe.config import Settings
from pxe.db.models import Host
from pxe.db.session import Database, close_databases
from pxe.lifecycle import State
from pxe.store.tokens import INSTALL_PREFIX, hash_token, new_token
from pxe.web.app import create_app


def issue_tokens(data: Path) -> dict[int, str]:
    """A token for every ready host, written as the boot lookup would (setup, not measured)."""
    database = Database(Settings(data_dir=data).database)
    tokens: dict[int, str] = {}
    with database.scope() as session:
        ready = session.scalars(
            update(Host).where(Host.state == State.READY.value).returning(Host.id)
        ).all()
        for host_id in ready:
            tokens[host_id] = new_token(INSTALL_PREFIX)
            session.execute(
                update(Host).where(Host.id == host_id)
                .values(install_token_hash=hash_token(tokens[host_id]))
            )  # fmt: skip
    database.dispose()
    return tokens


def per_request_ms(client: FlaskClient, urls: list[str]) -> float:
    start = time.perf_counter()
    for url in urls:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text}")
    return (time.perf_counter() - start) * 1000 / len(urls)


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The fastest of ``runs``: the machine is shared, the slow runs measure the neighbours."""
    return min(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=1000)
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the distinct-hosts run")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xcp-answerfile-bench-") as tmp:
        data = Path(tmp)
        populate(data, args.hosts)
        tokens = issue_tokens(data)
        app = create_app(Settings(data_dir=data, public_url="http://pxe.test:8080"))
        client = app.test_client()
        urls = [f"/answerfile/{host_id}?token={token}" for host_id, token in tokens.items()]
        distinct = urls[: args.distinct]
        if len(distinct) < args.distinct:
            raise SystemExit(f"only {len(distinct)} ready hosts: raise --hosts")

        per_request_ms(client, ["/healthz"] * 200 + urls[-50:])  # warm-up (another set of hosts)
        health = best_of(3, lambda: per_request_ms(client, ["/healthz"] * args.requests))
        one = best_of(3, lambda: per_request_ms(client, [urls[0]] * args.requests))
        # Each distinct host is measured on its first fetch only: one run, no best-of.
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        cold = per_request_ms(client, distinct)
        if profiler:
            profiler.disable()
        close_databases()

    print(f"answer files in-process, {args.hosts} hosts in the inventory")
    print(f"  /healthz (reference)                    {health:7.3f} ms/request")
    print(f"  one host's answer file, repeated        {one:7.3f} ms/request  "
          f"{one / health:5.2f}x /healthz")
    print(f"  {len(distinct)} distinct hosts, first fetch each   {cold:7.3f} ms/request  "
          f"{cold / health:5.2f}x /healthz")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
