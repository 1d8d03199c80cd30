"""PostgreSQL restarted in the middle of a thousand registrations over real HTTP: every answer
is an admission or a clean 503 with Retry-After (never a 500), the hosts that got a 503 are
admitted when they try again, as the first-boot agent does, exactly one becomes master and
none is lost or recorded twice.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from support.postgres import postgres_cluster, restart

from pxe.config import Settings
from pxe.db.models import Event, Host
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.registration import JOINED
from pxe.store.hosts import add_host
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool, get_pool
from pxe.store.tokens import issue_install_token
from pxe.web.app import create_app
from tests.support.registering import facts, mac_of

HOSTS = 1000
RESTART_AFTER = 150  # admissions before PostgreSQL is restarted
DOWN_SECONDS = 3.0  # longer than the server retries a unit of work: some answers are 503s
AGENT_PATIENCE_S = 90.0


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, str | None, dict]:
    """One registration: status, Retry-After, JSON answer (status 0: no HTTP answer)."""
    request = urllib.request.Request(
        f"{url}/api/v1/register", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, None, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After"), json.loads(error.read() or b"{}")
    except OSError:
        return 0, None, {}


def test_a_postgresql_restart_during_a_thousand_registrations(tmp_path: Path) -> None:
    with postgres_cluster() as cluster:
        database = Database(cluster.new_database())
        database.migrate()
        tokens = {}
        with database.scope() as session:
            create_pool(session, "rack1")
            for number in range(1, HOSTS + 1):
                host = add_host(session, macs=[mac_of(number)], pool="rack1",
                                state=State.INSTALLED)  # fmt: skip
                tokens[number] = issue_install_token(host)
        app = create_app(Settings(data_dir=tmp_path), database=database)
        statuses: Counter[int] = Counter()
        retry_after_missing: list[int] = []
        answers: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()
        admitted = threading.Semaphore(0)
        start = threading.Barrier(HOSTS + 1)
        restarted: dict[str, float] = {}

        with running_server(app, connection_limit=1000, backlog=2048) as running:

            def agent(number: int) -> None:
                rng = random.Random(number)
                start.wait()
                deadline = time.monotonic() + AGENT_PATIENCE_S
                while time.monotonic() < deadline:
                    status, retry_after, answer = _post(running.url, tokens[number],
                                                        facts(number))  # fmt: skip
                    with lock:
                        statuses[status] += 1
                        if status == 503 and retry_after is None:
                            retry_after_missing.append(number)
                    if status == 200:
                        answers[number] = answer
                        admitted.release()
                        return
                    if status not in (0, 503):
                        return  # not retryable: the test fails on it below
                    time.sleep(float(retry_after or 1) * rng.uniform(0.5, 1.0))

            def restarter() -> None:
                start.wait()
                for _ in range(RESTART_AFTER):
                    admitted.acquire()
                restarted["before"] = len(answers)
                restart(cluster, "fast", down_seconds=DOWN_SECONDS)
                restarted["after"] = len(answers)

            threads = [threading.Thread(target=agent, args=(n,)) for n in tokens]
            threads.append(threading.Thread(target=restarter))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        print(f"statuses: {dict(statuses)}; restart between {restarted}")
        assert RESTART_AFTER <= restarted["before"] < HOSTS, restarted
        assert restarted["after"] < HOSTS, "every host was in before the restart ended"
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, "no registration met the outage"
        assert retry_after_missing == []
        assert len(answers) == HOSTS
        roles = Counter(answer["role"] for answer in answers.values())
        assert roles == {"master": 1, "member": HOSTS - 1}
        with database.scope(write=False) as session:
            assert get_pool(session, "rack1").master is not None
            states = Counter(session.scalars(select(Host.state)))
            assert states == {State.IN_POOL.value: HOSTS}
            joined = session.execute(
                select(Event.host_id, func.count()).where(Event.kind == JOINED)
                .group_by(Event.host_id)
            ).all()  # fmt: skip
            assert len(joined) == HOSTS and {count for _, count in joined} == {1}
        database.dispose()
