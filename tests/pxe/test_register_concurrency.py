"""A thousand hosts registering at once into one pool, over real HTTP, on SQLite and PostgreSQL.

All are recorded, exactly one becomes master, nobody is recorded twice, and every host is
judged against that one master's facts.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pxe.config import Settings
from pxe.db.models import Event, Host, HostMac, Pool
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.registration import JOINED, REFUSED, register
from pxe.store.hosts import add_host
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool, get_pool, pool_members
from pxe.store.tokens import issue_install_token
from pxe.web.app import create_app
from tests.support.registering import facts, ip_of, mac_of, post_register

HOSTS = 1000
OTHER_VLAN_EVERY = 10  # every tenth host reports a tagged management VLAN


def _report(number: int) -> dict[str, Any]:
    vlan = 20 if number % OTHER_VLAN_EVERY == 0 else None
    return facts(number, management_vlan=vlan)


def _add_hosts(database: Database) -> dict[int, str]:
    tokens = {}
    with database.scope() as session:
        create_pool(session, "rack1")
        for number in range(1, HOSTS + 1):
            host = add_host(session, macs=[mac_of(number)], pool="rack1", state=State.INSTALLED)
            tokens[number] = issue_install_token(host)
    return tokens


def test_a_thousand_hosts_at_once(any_database: Database, tmp_path: Path) -> None:
    database = any_database
    tokens = _add_hosts(database)
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    start = threading.Barrier(HOSTS)
    app = create_app(Settings(data_dir=tmp_path), database=database)

    with running_server(app, connection_limit=1000, backlog=2048) as running:
        url = running.url

        def agent(number: int) -> None:
            start.wait()
            answers[number] = post_register(url, tokens[number], _report(number))

        threads = [threading.Thread(target=agent, args=(n,)) for n in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(answers) == HOSTS
    assert Counter(status for status, _ in answers.values()) == {200: HOSTS}
    masters = [n for n, (_, answer) in answers.items() if answer["role"] == "master"]
    assert len(masters) == 1
    (master,) = masters
    master_tagged = master % OTHER_VLAN_EVERY == 0
    for number, (_, answer) in answers.items():
        if number == master:
            continue
        if (number % OTHER_VLAN_EVERY == 0) == master_tagged:
            assert (answer["state"], answer["role"]) == ("in-pool", "member"), number
            assert answer["master_address"] == ip_of(master)
        else:
            assert answer["state"] == "registered", number
            assert len(answer["reasons"]) == 1
            assert "Management interface is" in answer["reasons"][0]

    with database.scope(write=False) as session:
        pool = get_pool(session, "rack1")
        assert pool.master is not None
        assert pool.master.macs[0].mac == mac_of(master)
        assert session.scalar(select(func.count()).select_from(Host)) == HOSTS
        assert session.scalar(select(func.count(func.distinct(HostMac.mac)))) == HOSTS
        states = Counter(session.scalars(select(Host.state)))
        expected_members = sum(1 for n in tokens if (n % OTHER_VLAN_EVERY == 0) == master_tagged)
        assert states == {
            State.IN_POOL.value: expected_members,
            State.REGISTERED.value: HOSTS - expected_members,
        }
        joined = session.execute(
            select(Event.host_id, func.count()).where(Event.kind == JOINED).group_by(Event.host_id)
        ).all()
        assert len(joined) == expected_members
        assert {count for _, count in joined} == {1}
        refused = session.scalar(
            select(func.count(func.distinct(Event.host_id))).where(Event.kind == REFUSED)
        )
        assert refused == HOSTS - expected_members


def test_hosts_naming_a_new_pool_at_once_create_it_once(any_database: Database) -> None:
    """The answer-file pool does not exist yet: fifty hosts create it together, one wins."""
    database = any_database
    count = 50
    with database.scope() as session:
        tokens = {
            n: issue_install_token(add_host(session, macs=[mac_of(n)], state=State.INSTALLED))
            for n in range(1, count + 1)
        }
    roles: Counter[str | None] = Counter()
    start = threading.Barrier(count)
    lock = threading.Lock()

    def agent(number: int) -> None:
        start.wait()
        answer = register(database, tokens[number], facts(number, pool="rack-new"))
        with lock:
            roles[answer.role] += 1

    threads = [threading.Thread(target=agent, args=(n,)) for n in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert roles == {"master": 1, "member": count - 1}
    with database.scope(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Pool)) == 1
        pool = get_pool(session, "rack-new")
        assert len(pool_members(session, pool)) == count
