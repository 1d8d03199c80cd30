"""Per-request cost of ``GET /answerfile/<id>?token=...``, in-process (Flask's test client).

No sockets, no waitress, no client process: what is left is our Python code per request, which
is what the HTTP goal (2,000 answer files a second on two cores) is spent on. The inventory holds
10,000 hosts as in ``bench/http_bench.py``; 1,001 of them are ready, each with its own token.
Reference measured in the same run: ``/healthz`` (Flask, a session and ``SELECT 1``).

* one host: the same host's answer file again and again (the best case: warm caches);
* distinct hosts: 1,000 ready hosts, each fetching its own answer file once (the cold path of
  a rack installing: every request is a host the server has not answered before).

    .venv/bin/python bench/answerfile_bench.py [--hosts 10000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask.testing import FlaskClient
from sqlalchemy import select, update

from bench.http_bench import populate
from pxe.config import Settings
from pxe.db.models import Host
from pxe.db.session import Database, close_databases
from pxe.store.lifecycle import State
from pxe.store.tokens import INSTALL_PREFIX, hash_token, new_token
from pxe.web.app import create_app


def issue_tokens(data: Path, count: int) -> dict[int, str]:
    """Install tokens for ``count`` hosts, the ready ones first, then installed ones put back to
    ready (a reinstall), written as the boot lookup would (setup, not measured)."""
    database = Database(Settings(data_dir=data).database)
    tokens: dict[int, str] = {}
    with database.scope() as session:
        chosen = session.scalars(
            select(Host.id).order_by(Host.state != State.READY.value, Host.id).limit(count)
        ).all()
        for host_id in chosen:
            tokens[host_id] = new_token(INSTALL_PREFIX)
            session.execute(
                update(Host).where(Host.id == host_id)
                .values(state=State.READY.value, install_token_hash=hash_token(tokens[host_id]))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="per round, for /healthz "
                        "and the repeated host")  # fmt: skip
    parser.add_argument("--distinct", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the distinct-hosts requests")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xcp-answerfile-bench-") as tmp:
        data = Path(tmp)
        populate(data, args.hosts)
        tokens = issue_tokens(data, args.distinct + 1)
        app = create_app(Settings(data_dir=data, public_url="http://pxe.test:8080"))
        client = app.test_client()
        urls = [f"/answerfile/{host_id}?token={token}" for host_id, token in tokens.items()]
        if len(urls) <= args.distinct:
            raise SystemExit(f"only {len(urls)} hosts: raise --hosts")
        repeated, distinct = urls[0], urls[1:]
        per_round = args.distinct // args.rounds

        per_request_ms(client, ["/healthz", repeated] * 100)  # warm-up, on no distinct host
        profiler = cProfile.Profile() if args.profile else None
        health, one, cold = [], [], []
        # Interleaved rounds, the fastest of each kind kept: the machine is shared, and the
        # slow rounds measure the neighbours. Each distinct host is fetched once, in one round.
        for i in range(args.rounds):
            health.append(per_request_ms(client, ["/healthz"] * args.requests))
            one.append(per_request_ms(client, [repeated] * args.requests))
            if profiler:
                profiler.enable()
            cold.append(per_request_ms(client, distinct[i * per_round : (i + 1) * per_round]))
            if profiler:
                profiler.disable()
        close_databases()

    def spread(values: list[float]) -> str:
        return f"{min(values):7.3f} ms/request (rounds {min(values):.3f}-{max(values):.3f})"

    print(f"answer files in-process, {args.hosts} hosts in the inventory, fastest of "
          f"{args.rounds} interleaved rounds")
    print(f"  /healthz (reference)                      {spread(health)}")
    print(f"  one host's answer file, repeated          {spread(one)}  "
          f"{min(one) / min(health):5.2f}x /healthz")
    print(f"  {per_round * args.rounds} distinct hosts, first fetch each     {spread(cold)}  "
          f"{min(cold) / min(health):5.2f}x /healthz")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
