"""A registration is decided on one read and written only if what it read still holds.

The reads run outside SQLite's write lock, so another writer may have moved the host, claimed
the pool's master or changed that master in between; the write must then record nothing, and
the caller reads again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from pxe.db.models import Event, Host, HostHealth, Pool
from pxe.db.prepared import transaction
from pxe.db.session import Database
from pxe.db.write_retry import write_transaction
from pxe.store.events import EventRow
from pxe.store.registrations import (
    InventoryReader,
    MasterSeen,
    RegisteringHost,
    RegistrationWrite,
    apply_registration,
)
from pxe.store.tokens import hash_token
from tests.support.registering import installed_host, rack_inventory


@pytest.fixture
def database(tmp_path: Path):
    with rack_inventory(tmp_path) as db:
        yield db


def _read(database: Database, token: str) -> RegisteringHost:
    with transaction(database.engine, write=False) as read:
        host = InventoryReader(read).host(hash_token(token))
    assert host is not None
    return host


def _pool_id(database: Database) -> int:
    with database.scope(write=False) as session:
        return session.scalar(select(Pool.id).where(Pool.name == "rack1"))


def _joining(host: RegisteringHost, **changes) -> RegistrationWrite:
    return RegistrationWrite(
        host.id,
        host.updated_at,
        {"state": "in-pool", "state_reason": "joined", "token_spent": True},
        events=(EventRow("pool-joined", "joined"),),
        report_token_hash="0" * 64,
        **changes,
    )


def _apply(database: Database, write: RegistrationWrite) -> bool:
    return write_transaction(database, lambda tx: apply_registration(tx, write))


def _recorded(database: Database, host_id: int) -> tuple[str, int, int]:
    """The host's state, its events of the write and its report tokens."""
    with database.scope(write=False) as session:
        state = session.scalar(select(Host.state).where(Host.id == host_id))
        events = session.scalar(select(func.count()).select_from(Event).where(
            Event.host_id == host_id, Event.kind == "pool-joined"))  # fmt: skip
        tokens = session.scalar(select(func.count()).select_from(HostHealth).where(
            HostHealth.host_id == host_id))  # fmt: skip
    return state, events, tokens


def test_a_write_on_an_unchanged_inventory_records_everything(database: Database) -> None:
    host = _read(database, installed_host(database, 1, pool="rack1"))
    assert _apply(database, _joining(host, claim_master=_pool_id(database)))
    assert _recorded(database, host.id) == ("in-pool", 1, 1)
    with database.scope(write=False) as session:
        assert session.scalar(select(Pool.master_host_id)) == host.id


def test_a_host_moved_since_the_read_is_not_written(database: Database) -> None:
    host = _read(database, installed_host(database, 1, pool="rack1"))
    with database.scope() as session:  # an operator asks for a reinstall meanwhile
        session.execute(update(Host).where(Host.id == host.id).values(state="ready"))
    assert not _apply(database, _joining(host))
    assert _recorded(database, host.id) == ("ready", 0, 0)


def test_a_master_claimed_since_the_read_is_not_claimed_again(database: Database) -> None:
    first = _read(database, installed_host(database, 1, pool="rack1"))
    second = _read(database, installed_host(database, 2, pool="rack1"))
    pool = _pool_id(database)
    assert _apply(database, _joining(first, claim_master=pool))
    assert not _apply(database, _joining(second, claim_master=pool))
    assert _recorded(database, second.id) == ("installed", 0, 0)
    with database.scope(write=False) as session:
        assert session.scalar(select(Pool.master_host_id)) == first.id


def test_a_master_changed_since_the_read_voids_the_verdict(database: Database) -> None:
    master = _read(database, installed_host(database, 1, pool="rack1"))
    pool = _pool_id(database)
    assert _apply(database, _joining(master, claim_master=pool))
    joiner = _read(database, installed_host(database, 2, pool="rack1"))
    judged_against = MasterSeen(pool, master.id, _read_master_time(database, master.id))
    with database.scope() as session:  # the master is reinstalled after the verdict was made
        session.execute(update(Host).where(Host.id == master.id).values(state="ready"))
    assert not _apply(database, _joining(joiner, master_seen=judged_against))
    assert _recorded(database, joiner.id) == ("installed", 0, 0)
    with database.scope() as session:  # and another host became master instead
        session.execute(update(Pool).values(master_host_id=joiner.id))
    fresh = MasterSeen(pool, master.id, _read_master_time(database, master.id))
    assert not _apply(database, _joining(joiner, master_seen=fresh))


def _read_master_time(database: Database, host_id: int):
    with database.scope(write=False) as session:
        return session.scalar(select(Host.updated_at).where(Host.id == host_id))
