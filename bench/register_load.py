"""Registrations as a rack's first boots send them, for the benches: installed hosts written
straight into the inventory, and waves of requests sent by ``curl --parallel`` processes.

The load comes from curl (C) so the clients' cost is small and the same for whatever they are
compared with; a bench in Python threads used to share the two cores with the server it timed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from common.runner import start
from pxe.db.models import Host, HostMac, utcnow
from pxe.db.session import Database
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool
from pxe.store.tokens import hash_token, new_token
from tests.support.registering import facts, mac_of


@dataclass(frozen=True)
class Transfer:
    """One request of a wave; ``output`` keeps the answer when the bench checks it."""

    url: str
    headers: tuple[str, ...] = ()
    data: str | None = None
    output: Path | None = None


@dataclass(frozen=True)
class Wave:
    """What a wave took: its wall time, each answer's status and each request's own time."""

    seconds: float
    statuses: Counter[str]
    latencies_ms: list[float]

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    def all_ok(self) -> bool:
        return self.statuses == Counter({"200": self.count})


def populate(
    database: Database, first: int, count: int, pools: list[str]
) -> list[tuple[int, str]]:
    """``count`` installed hosts numbered from ``first``, spread over new pools named
    ``pools``, each with an install token and a MAC; returns (number, token) pairs."""
    numbers = list(range(first, first + count))
    tokens = {n: new_token("xpi_") for n in numbers}
    with database.scope() as session:
        pool_ids = [create_pool(session, name).id for name in pools]
        now = utcnow()
        ids = session.scalars(
            insert(Host).returning(Host.id, sort_by_parameter_order=True),
            [{"pool_id": pool_ids[i % len(pool_ids)], "state": State.INSTALLED.value,
              "state_reason": "", "failure_log": "", "facts": {}, "refusal_reasons": [],
              "token_spent": False, "install_token_hash": hash_token(tokens[n]),
              "created_at": now, "updated_at": now}
             for i, n in enumerate(numbers)],
        ).all()  # fmt: skip
        macs = [{"host_id": i, "mac": mac_of(n)} for i, n in zip(ids, numbers, strict=True)]
        session.execute(insert(HostMac), macs)
    return list(tokens.items())


def registrations(address: str, hosts: list[tuple[int, str]], out: Path) -> list[Transfer]:
    """Each host's first-boot registration to ``address`` (host:port), its answer in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        Transfer(
            f"http://{address}/api/v1/register",
            (f"Authorization: Bearer {token}", "Content-Type: application/json"),
            json.dumps(facts(number)),
            out / f"{number}.json",
        )
        for number, token in hosts
    ]


def answers(transfers: list[Transfer]) -> list[dict]:
    """The JSON answers a wave kept (a missing or unreadable one is left out)."""
    kept = []
    for transfer in transfers:
        try:
            kept.append(json.loads(transfer.output.read_text()) if transfer.output else {})
        except (OSError, ValueError):
            continue
    return kept


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config(transfers: list[Transfer]) -> str:
    blocks = []
    for transfer in transfers:
        lines = [f"url = {_quoted(transfer.url)}"]
        lines += [f"header = {_quoted(header)}" for header in transfer.headers]
        if transfer.data is not None:
            lines.append(f"data = {_quoted(transfer.data)}")
        lines.append(f"output = {_quoted(str(transfer.output or '/dev/null'))}")
        lines.append('write-out = "%{http_code} %{time_total}\\n"')
        blocks.append("\n".join(lines))
    return "\nnext\n".join(blocks) + "\n"


def fire(batches: list[list[Transfer]], work: Path, parallel: int) -> Wave:
    """Send each batch from its own ``curl --parallel`` process (``parallel`` in flight each),
    all processes started together; the wave ends when the last answer is in."""
    work.mkdir(parents=True, exist_ok=True)
    configs = []
    for i, batch in enumerate(batches):
        configs.append(work / f"curl-{i}.conf")
        configs[-1].write_text(_config(batch))
    curl = ["curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", str(parallel),
            "--max-time", "300", "-K"]  # fmt: skip
    began = time.perf_counter()
    procs = [start([*curl, c], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in configs]
    outputs = [proc.communicate() for proc in procs]
    seconds = time.perf_counter() - began
    statuses: Counter[str] = Counter()
    latencies = []
    for stdout, _ in outputs:
        for line in stdout.decode().splitlines():
            status, took = line.split()
            statuses[status] += 1
            latencies.append(float(took) * 1000)
    return Wave(seconds, statuses, latencies)
