"""The install slots a boot counts: installing hosts and ready hosts holding a token, nothing
else, on both backends, and on SQLite read from the index alone."""

from __future__ import annotations

from sqlalchemy import select

from pxe.db.models import Host, HostMac
from pxe.db.session import Database
from pxe.store.boot_facts import boot_facts, count_slots_taken
from pxe.store.lifecycle import State
from pxe.store.tokens import slots_taken

# (state, holds a token): two of them take a slot.
HOSTS = [
    (State.INSTALLING, True),
    (State.READY, True),
    (State.READY, False),  # queued, or not booted yet
    (State.INSTALLED, True),  # its token is spent, not a slot
    (State.DISCOVERED, False),
    (State.FAILED, True),
]


def _inventory(database: Database) -> None:
    with database.scope() as session:
        for number, (state, token) in enumerate(HOSTS, start=1):
            host = Host(hostname=f"node{number}", state=state.value, state_reason="",
                        install_token_hash=f"{number:064x}" if token else None)  # fmt: skip
            host.macs.append(HostMac(mac=f"52:54:00:00:00:{number:02x}"))
            session.add(host)


def test_slots_taken_counts_installing_and_ready_with_a_token(any_database: Database) -> None:
    _inventory(any_database)
    with any_database.scope(write=False) as session:
        assert count_slots_taken(session) == 2
    facts = boot_facts(any_database.engine, mac="52:54:00:00:00:03")
    assert facts is not None and facts.slots_taken == 2


def test_slots_are_counted_from_the_index_alone_on_sqlite(database: Database) -> None:
    _inventory(database)
    with database.engine.connect() as connection:
        compiled = select(slots_taken()).compile(connection)
        plan = connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
        ).all()
    searches = [row[-1] for row in plan if row[-1].startswith(("SEARCH hosts", "SCAN hosts"))]
    assert len(searches) == 2, plan
    assert all("COVERING INDEX" in search for search in searches), plan
