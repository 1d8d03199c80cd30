"""POST /api/v1/register over real HTTP (waitress on loopback), as the first-boot agent calls it."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dom0.firstboot import agent
from pxe.config import Settings
from pxe.db.session import Database, close_databases
from pxe.httpd.server import running_server
from pxe.registration import on_host_removed
from pxe.store.hosts import host_by_mac
from pxe.store.pools import get_pool
from pxe.store.tokens import create_api_token
from pxe.web.app import create_app
from tests.support.bind import BindServer, running_bind
from tests.support.registering import (
    events_of,
    facts,
    host_row,
    installed_host,
    ip_of,
    mac_of,
    post_register,
    rack_inventory,
    serving,
)
from xcp_provision.main import main


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with rack_inventory(tmp_path) as db:
        yield db


@pytest.fixture
def server(tmp_path: Path, database: Database) -> Iterator[str]:
    with serving(tmp_path, database) as url:
        yield url


def test_the_agents_exchange(server: str, database: Database) -> None:
    master_token = installed_host(database, 1, pool="rack1")
    member_token = installed_host(database, 2, pool="rack1")
    status, master = post_register(server, master_token, facts(1))
    assert status == 200
    assert set(master) == {
        "state", "pool", "role", "master_address", "pool_secret", "reasons", "report_token"
    }  # fmt: skip
    assert (master["state"], master["role"], master["master_address"]) == (
        "in-pool",
        "master",
        ip_of(1),
    )
    status, member = post_register(server, member_token, facts(2))
    assert status == 200
    assert member["role"] == "member"
    assert member["master_address"] == ip_of(1)
    assert member["pool_secret"] == master["pool_secret"]
    # The agent retrying after a lost response gets the same answer, and a new report token
    # (it never received the first one).
    status, again = post_register(server, member_token, facts(2))
    assert status == 200 and again.pop("report_token") != member.pop("report_token")
    assert again == member


def test_refused_host_gets_reasons_with_200(server: str, database: Database) -> None:
    post_register(server, installed_host(database, 1, pool="rack1"), facts(1))
    status, answer = post_register(
        server, installed_host(database, 2, pool="rack1"), facts(2, management_vlan=10)
    )
    assert status == 200
    assert answer["state"] == "registered"
    assert answer["reasons"] == ["Management interface is VLAN 10, the master's is untagged."]
    assert answer["pool_secret"] is None


def test_error_statuses(server: str, database: Database) -> None:
    first = installed_host(database, 1, pool="rack1")
    token = installed_host(database, 2, pool="rack1")
    status, body = post_register(server, None, facts(2))
    assert status == 401
    assert "Bearer" in body["error"]
    assert post_register(server, "xpi_unknown", facts(2))[0] == 401
    status, body = post_register(server, token, facts(2, management_ip="not-an-ip"))
    assert (status, body["field"]) == (400, "management_ip")
    assert "management_ip" in body["error"]
    status, body = post_register(server, token, ["not", "an", "object"])
    assert status == 400
    status, body = post_register(server, token, facts(1))
    assert status == 403
    assert "another host" in body["error"]
    assert post_register(server, first, facts(1))[0] == 200
    status, body = post_register(server, first, facts(1, hostname="renamed"))
    assert status == 403
    assert "spent" in body["error"]


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    with running_bind(tmp_path / "bind") as server:
        yield server


def test_waiting_for_the_named_master_is_a_503_the_agent_retries(
    server: str, database: Database
) -> None:
    member_token = installed_host(database, 2, pool="rack1")
    master_token = installed_host(database, 1, pool="rack1")
    with database.scope() as session:
        get_pool(session, "rack1").master_host_id = host_by_mac(session, mac_of(1)).id
    request = urllib.request.Request(
        f"{server}/api/v1/register",
        data=json.dumps(facts(2)).encode(),
        headers={"Authorization": f"Bearer {member_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as waiting:
        urllib.request.urlopen(request, timeout=30)
    assert waiting.value.code == 503
    assert waiting.value.headers["Retry-After"] == "30"
    body = json.loads(waiting.value.read())
    assert body["state"] == "registered"
    assert "has not registered yet" in body["error"]
    assert post_register(server, master_token, facts(1))[1]["role"] == "master"
    assert post_register(server, member_token, facts(2))[1]["role"] == "member"


def _dns_settings(tmp_path: Path, bind: BindServer) -> Settings:
    return Settings(
        data_dir=tmp_path,
        dns_server=bind.host,
        dns_port=bind.port,
        dns_forward_zone=bind.forward_zone,
        dns_reverse_zone=bind.reverse_zone,
        dns_key_name=bind.key_name,
        dns_key_algorithm=bind.algorithm,
        dns_key_file=str(bind.key_file),
    )


def test_registration_puts_the_host_in_dns_and_reports_conflicts(
    tmp_path: Path, database: Database, bind: BindServer
) -> None:
    settings = _dns_settings(tmp_path, bind)
    with running_server(create_app(settings, database=database)) as running:
        url = running.url
        status, answer = post_register(url, installed_host(database, 1, pool="rack1"), facts(1))
        assert (status, answer["role"]) == (200, "master")
        assert bind.query("node0001.xcp.test.", "A") == [ip_of(1)]
        assert bind.query("1.2.0.192.in-addr.arpa.", "PTR") == ["node0001.xcp.test."]
        assert events_of(database, 1, "dns") == [
            f"added node0001.xcp.test. A {ip_of(1)}",
            "added 1.2.0.192.in-addr.arpa. PTR node0001.xcp.test.",
        ]
        # A host whose name is taken in DNS still joins; the conflict is an event.
        status, answer = post_register(
            url, installed_host(database, 2, pool="rack1"), facts(2, hostname="taken")
        )
        assert (status, answer["state"], answer["role"]) == (200, "in-pool", "member")
        (conflict,) = events_of(database, 2, "dns")
        assert conflict.startswith("not added: DNS server")
        assert "taken.xcp.test. already has A 192.0.2.200" in conflict
        assert bind.query("taken.xcp.test.", "A") == ["192.0.2.200"]

    # Removing the host from the inventory takes its records out of DNS.
    assert on_host_removed(settings, host_row(database, 1)) == []
    assert bind.query("node0001.xcp.test.", "A") == []
    assert bind.query("1.2.0.192.in-addr.arpa.", "PTR") == []
    # The conflicting host never owned taken.xcp.test.: its removal leaves the record alone.
    on_host_removed(settings, host_row(database, 2))
    assert bind.query("taken.xcp.test.", "A") == ["192.0.2.200"]


def test_a_refused_host_registering_from_a_new_address_moves_its_records(
    tmp_path: Path, database: Database, bind: BindServer
) -> None:
    with running_server(create_app(_dns_settings(tmp_path, bind), database=database)) as running:
        url = running.url
        post_register(url, installed_host(database, 1, pool="rack1"), facts(1))
        token = installed_host(database, 2, pool="rack1")
        refused = facts(2, network_backend="bridge")
        assert post_register(url, token, refused)[1]["state"] == "registered"
        moved = {**refused, "management_ip": "192.0.2.102"}
        assert post_register(url, token, moved)[1]["state"] == "registered"
    assert bind.query("node0002.xcp.test.", "A") == ["192.0.2.102"]
    assert bind.query("2.2.0.192.in-addr.arpa.", "PTR") == []
    assert bind.query("102.2.0.192.in-addr.arpa.", "PTR") == ["node0002.xcp.test."]
    assert "removed the records of node0002 at 192.0.2.2" in events_of(database, 2, "dns")


def test_dns_down_does_not_fail_registration(tmp_path: Path, database: Database) -> None:
    key = tmp_path / "key"
    key.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=\n")
    settings = Settings(
        data_dir=tmp_path,
        dns_server="127.0.0.1",
        dns_port=_closed_port(),
        dns_forward_zone="xcp.test.",
        dns_reverse_zone="2.0.192.in-addr.arpa.",
        dns_key_name="k",
        dns_key_file=str(key),
    )
    with running_server(create_app(settings, database=database)) as running:
        url = running.url
        status, answer = post_register(url, installed_host(database, 1, pool="rack1"), facts(1))
    assert (status, answer["role"]) == (200, "master")
    (event,) = events_of(database, 1, "dns")
    assert event.startswith("not updated: DNS server 127.0.0.1:")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_real_first_boot_agent_understands_every_answer(
    server: str, database: Database
) -> None:
    """dom0/firstboot/agent.py's own client: 200 is an answer, 4xx final, 503 worth retrying."""
    master_token = installed_host(database, 1, pool="rack1")
    member_token = installed_host(database, 2, pool="rack1")
    with database.scope() as session:
        get_pool(session, "rack1").master_host_id = host_by_mac(session, mac_of(1)).id
    with pytest.raises(agent.UnavailableError, match="503"):
        agent.register(server, member_token, facts(2))
    assert agent.register(server, master_token, facts(1))["role"] == "master"
    answer = agent.register(server, member_token, facts(2))
    assert (answer["state"], answer["role"], answer["master_address"]) == (
        "in-pool",
        "member",
        ip_of(1),
    )
    with pytest.raises(agent.RefusedError, match="HTTP 403"):
        agent.register(server, member_token, facts(2, cores=1))
    with pytest.raises(agent.RefusedError, match="HTTP 401"):
        agent.register(server, "xpi_nobody", facts(3))


def test_the_pools_api_shows_master_members_and_refused_hosts(
    server: str, database: Database
) -> None:
    with database.scope() as session:
        api_token = create_api_token(session, "admin")
    post_register(server, installed_host(database, 1, pool="rack1"), facts(1))
    post_register(server, installed_host(database, 2, pool="rack1"), facts(2))
    post_register(server, installed_host(database, 3, pool="rack1"), facts(3, xen_version="4.19"))
    request = urllib.request.Request(
        f"{server}/api/v1/pools/rack1", headers={"Authorization": f"Bearer {api_token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        pool = json.loads(response.read())
    assert (pool["name"], pool["master"], pool["master_address"]) == ("rack1", "node0001", ip_of(1))
    assert [(m["hostname"], m["state"], m["role"]) for m in pool["members"]] == [
        ("node0001", "in-pool", "master"),
        ("node0002", "in-pool", "member"),
    ]
    assert [(r["hostname"], r["reasons"]) for r in pool["refused"]] == [
        ("node0003", ["Xen version 4.19 differs from the master's 4.17.5."])
    ]


def test_removing_a_host_by_api_or_cli_removes_its_dns_records(
    tmp_path: Path, database: Database, bind: BindServer
) -> None:
    settings = _dns_settings(tmp_path, bind)
    with database.scope() as session:
        api_token = create_api_token(session, "admin")
    with running_server(create_app(settings, database=database)) as running:
        url = running.url
        post_register(url, installed_host(database, 1, pool="rack1"), facts(1))
        post_register(url, installed_host(database, 2, pool="rack1"), facts(2))
        assert bind.query("node0001.xcp.test.", "A") == [ip_of(1)]
        request = urllib.request.Request(
            f"{url}/api/v1/hosts/node0001",
            headers={"Authorization": f"Bearer {api_token}"},
            method="DELETE",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204
    assert bind.query("node0001.xcp.test.", "A") == []
    assert bind.query("1.2.0.192.in-addr.arpa.", "PTR") == []

    config = tmp_path / "server.toml"
    config.write_text(
        f'database_url = "{database.url}"\n'
        "[dns]\n"
        + "".join(
            f'{key} = "{getattr(settings, "dns_" + key)}"\n'
            for key in ("server", "forward_zone", "reverse_zone", "key_name", "key_file")
        )
        + f"port = {bind.port}\n"
    )
    removed = CliRunner().invoke(main, ["hosts", "remove", "node0002", "--config", str(config)])
    close_databases()  # the CLI's engine on the same file
    assert removed.exit_code == 0, removed.output
    assert bind.query("node0002.xcp.test.", "A") == []
    assert bind.query("2.2.0.192.in-addr.arpa.", "PTR") == []
