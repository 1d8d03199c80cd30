"""Registration against a real inventory: placement, XAPI checks, tokens, idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from pxe.db.models import Event, Host, Pool, utcnow
from pxe.db.session import Database
from pxe.host_report import ReportError
from pxe.pools_view import pool_detail
from pxe.registration import JOINED, REPLAY_WINDOW, ForbiddenError, TokenError, register
from pxe.store.hosts import add_host
from pxe.store.lifecycle import State, TransitionError
from pxe.store.pools import create_pool, get_pool
from pxe.store.profiles import create_profile
from pxe.store.tokens import issue_install_token
from tests.support.registering import events_of, facts, host_row, installed_host, mac_of


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'inventory.sqlite3'}")
    db.migrate()
    with db.scope() as session:
        create_pool(session, "rack1")
    yield db
    db.dispose()


def _secret(database: Database, name: str) -> str:
    with database.scope(write=False) as session:
        return get_pool(session, name).secret


def test_first_host_is_master_and_the_next_a_member(database: Database) -> None:
    first = installed_host(database, 1, pool="rack1")
    second = installed_host(database, 2, pool="rack1")
    master = register(database, first, facts(1))
    assert master.to_json() == {
        "state": "in-pool",
        "pool": "rack1",
        "role": "master",
        "master_address": "192.0.2.1",
        "pool_secret": _secret(database, "rack1"),
        "reasons": [],
        "report_token": master.report_token,
    }
    assert master.report_token.startswith("xph_")
    member = register(database, second, facts(2))
    assert (member.state, member.role, member.master_address) == ("in-pool", "member", "192.0.2.1")
    assert member.pool_secret == master.pool_secret
    row = host_row(database, 2)
    assert row.state == State.IN_POOL
    assert row.token_spent
    assert row.hostname == "node0002"
    assert row.facts["cpu_model"] == "Intel(R) Xeon(R) Silver 4314"
    assert events_of(database, 2, JOINED) == ["pool rack1 as member"]


def test_a_mismatched_host_stays_registered_with_reasons(database: Database) -> None:
    register(database, installed_host(database, 1, pool="rack1"), facts(1))
    token = installed_host(database, 3, pool="rack1")
    answer = register(database, token, facts(3, xen_version="4.18.0", cpu_vendor="AuthenticAMD"))
    assert answer.state == "registered"
    assert answer.pool == "rack1"
    assert (answer.role, answer.master_address, answer.pool_secret) == (None, None, None)
    assert len(answer.reasons) == 2
    assert "Xen version 4.18.0 differs from the master's 4.17.5." in answer.reasons
    row = host_row(database, 3)
    assert row.state == State.REGISTERED
    assert row.refusal_reasons == list(answer.reasons)
    assert not row.token_spent
    # The same report again: the same answer (idempotent), the token still usable.
    again = register(database, token, facts(3, xen_version="4.18.0", cpu_vendor="AuthenticAMD"))
    assert again == answer
    with database.scope(write=False) as session:
        detail = pool_detail(session, get_pool(session, "rack1"))
    assert detail["master"] == "node0001"
    assert detail["master_address"] == "192.0.2.1"
    assert [m["hostname"] for m in detail["members"]] == ["node0001"]
    assert detail["refused"] == [
        {
            "id": row.id,
            "hostname": "node0003",
            "state": "registered",
            "reasons": row.refusal_reasons,
        }
    ]


def test_force_admits_another_cpu_vendor_and_nothing_else(database: Database) -> None:
    with database.scope() as session:
        session.execute(update(Pool).where(Pool.name == "rack1").values(force=True))
    register(database, installed_host(database, 1, pool="rack1"), facts(1))
    amd = register(
        database, installed_host(database, 2, pool="rack1"), facts(2, cpu_vendor="AuthenticAMD")
    )
    assert amd.role == "member"
    bridge = register(
        database,
        installed_host(database, 3, pool="rack1"),
        facts(3, cpu_vendor="AuthenticAMD", network_backend="bridge"),
    )
    assert bridge.reasons == ("Network backend bridge differs from the master's openvswitch.",)


def test_a_refused_host_registers_again_once_the_cause_is_fixed(database: Database) -> None:
    register(database, installed_host(database, 1, pool="rack1"), facts(1))
    token = installed_host(database, 2, pool="rack1")
    assert register(database, token, facts(2, cpu_vendor="AuthenticAMD")).state == "registered"
    with database.scope() as session:
        session.execute(update(Pool).where(Pool.name == "rack1").values(force=True))
    assert register(database, token, facts(2, cpu_vendor="AuthenticAMD")).role == "member"
    assert host_row(database, 2).refusal_reasons == []


def test_a_retry_after_success_gets_the_same_answer_but_nothing_else(
    database: Database,
) -> None:
    token = installed_host(database, 1, pool="rack1")
    first = register(database, token, facts(1))
    assert register(database, token, facts(1)) == first
    with pytest.raises(ForbiddenError, match="spent when the host joined"):
        register(database, token, facts(1, cores=64))
    # Long after the join, even an identical report is refused.
    host_id = host_row(database, 1).id
    with database.scope() as session:
        session.execute(
            update(Event)
            .where(Event.host_id == host_id, Event.kind == JOINED)
            .values(time=utcnow() - REPLAY_WINDOW - timedelta(minutes=1))
        )
    with pytest.raises(ForbiddenError) as refused:
        register(database, token, facts(1))
    assert refused.value.status == 403


def test_tokens_missing_unknown_or_of_another_host(database: Database) -> None:
    installed_host(database, 1, pool="rack1")
    token = installed_host(database, 2, pool="rack1")
    with pytest.raises(TokenError) as missing:
        register(database, None, facts(2))
    assert missing.value.status == 401
    with pytest.raises(TokenError):
        register(database, "xpi_not-a-token", facts(2))
    with pytest.raises(ForbiddenError, match=mac_of(1)) as other:
        register(database, token, facts(1))
    assert other.value.status == 403
    with pytest.raises(ForbiddenError):
        register(database, token, facts(2, mac=mac_of(77)))


def test_a_host_listed_without_a_mac_is_known_by_its_token(database: Database) -> None:
    with database.scope() as session:
        host = add_host(session, serial="SN-1", pool="rack1", state=State.INSTALLED)
        token = issue_install_token(host)
    assert register(database, token, facts(9)).role == "master"
    assert host_row(database, 9).serial == "SN-1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mac": "52:54:00"}, "mac"),
        ({"xen_version": None}, "xen_version"),
        ({"cpu_vendor": 7}, "cpu_vendor"),
        ({"network_backend": ""}, "network_backend"),
        ({"management_ip": "192.0.2.300"}, "management_ip"),
        ({"management_vlan": 5000}, "management_vlan"),
        ({"hostname": "bad_name!"}, "hostname"),
        ({"nics": "eth0"}, "nics"),
    ],
)
def test_a_malformed_report_names_its_field(
    database: Database, change: dict[str, object], field: str
) -> None:
    token = installed_host(database, 1, pool="rack1")
    with pytest.raises(ReportError) as bad:
        register(database, token, facts(1, **change))
    assert bad.value.field == field
    assert bad.value.status == 400
    assert field in str(bad.value)
    assert host_row(database, 1).state == State.INSTALLED


def test_pool_from_profile_then_answer_file_then_none(database: Database) -> None:
    with database.scope() as session:
        create_pool(session, "from-profile")
        create_profile(session, "base", pool="from-profile")
        create_profile(session, "child", parent="base")
    by_profile = register(database, installed_host(database, 1, profile="child"), facts(1))
    assert by_profile.pool == "from-profile"
    by_answer_file = register(database, installed_host(database, 2), facts(2, pool="rack9"))
    assert (by_answer_file.pool, by_answer_file.role) == ("rack9", "master")
    assert events_of(database, 2, "pool") == ["pool rack9 created from the answer file"]
    # The inventory entry wins over the answer file.
    by_inventory = register(
        database, installed_host(database, 3, pool="rack1"), facts(3, pool="rack9")
    )
    assert by_inventory.pool == "rack1"
    alone = register(database, installed_host(database, 4), facts(4))
    assert (alone.state, alone.pool, alone.role) == ("registered", None, None)
    assert "No pool is assigned" in alone.reasons[0]


def test_a_named_master_is_master_even_when_it_registers_last(database: Database) -> None:
    member_token = installed_host(database, 2, pool="rack1")
    master_token = installed_host(database, 1, pool="rack1")
    with database.scope() as session:
        master = session.query(Host).filter(Host.macs.any(mac=mac_of(1))).one()
        get_pool(session, "rack1").master_host_id = master.id
    waiting = register(database, member_token, facts(2))
    assert waiting.state == "registered"
    assert "has not registered yet" in waiting.reasons[0]
    assert waiting.retry_after == 30
    assert register(database, master_token, facts(1)).role == "master"
    joined = register(database, member_token, facts(2))
    assert (joined.role, joined.master_address) == ("member", "192.0.2.1")


def test_a_host_that_never_finished_installing_cannot_register(database: Database) -> None:
    with database.scope() as session:
        create_profile(session, "p")
        host = add_host(session, macs=[mac_of(5)], profile="p")
        token = issue_install_token(host)
    with pytest.raises(TransitionError, match="ready and cannot become in-pool"):
        register(database, token, facts(5, pool="rack1"))
