"""The dashboard's pages and actions through Flask's test client: filters, the masked answer
file, assign, reinstall, remove, and the pool page after real registrations."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from pxe.db.models import Host
from pxe.db.session import Database
from pxe.store.events import list_events
from pxe.store.hosts import add_host, get_host
from pxe.store.lifecycle import State
from pxe.store.tokens import issue_install_token
from tests.dashboard.conftest import ROOT_HASH
from tests.support.registering import facts, installed_host

Client = tuple[FlaskClient, str]


def _add(database: Database, mac: str, **fields) -> int:
    with database.scope() as session:
        return add_host(session, macs=[mac], **fields).id


def _install_token(database: Database, host_id: int) -> str:
    with database.scope() as session:
        return issue_install_token(get_host(session, host_id))


def _host(database: Database, host_id: int) -> Host:
    with database.scope(write=False) as session:
        host = get_host(session, host_id)
        session.expunge(host)
        return host


def test_hosts_filter_by_state_and_pool(signed_in: Client, database: Database) -> None:
    client, _ = signed_in
    _add(database, "52:54:00:00:00:01", hostname="alpha", profile="demo", pool="rack1")
    _add(database, "52:54:00:00:00:02", hostname="bravo", profile="demo", pool="rack2")
    _add(database, "52:54:00:00:00:03", hostname="charlie")
    page = client.get("/ui/").get_data(as_text=True)
    assert all(name in page for name in ("alpha", "bravo", "charlie"))
    assert "1 discovered host</a> waiting" in page
    ready = client.get("/ui/?state=ready").get_data(as_text=True)
    assert "alpha" in ready and "bravo" in ready and "charlie" not in ready
    rack2 = client.get("/ui/?pool=rack2").get_data(as_text=True)
    assert "bravo" in rack2 and "alpha" not in rack2 and "charlie" not in rack2
    live = client.get("/ui/hosts/live?state=discovered").get_data(as_text=True)
    assert "charlie" in live and "alpha" not in live
    assert client.get("/ui/?state=sleeping").status_code == 400
    assert client.get("/ui/?pool=nowhere").status_code == 404


def test_install_progress_shows_in_the_live_fragments(
    signed_in: Client, database: Database
) -> None:
    client, _ = signed_in
    host_id = _add(database, "52:54:00:00:00:11", hostname="delta", profile="demo")
    auth = {"Authorization": f"Bearer {_install_token(database, host_id)}"}
    answer = client.post(
        "/api/v1/installs/events",
        headers=auth,
        json={"step": "partitioning", "percent": 35, "message": "sda"},
    )
    assert answer.status_code == 202
    row = client.get("/ui/hosts/live").get_data(as_text=True)
    assert 'data-percent="35"' in row and "partitioning · 35%" in row
    assert 'data-state="installing"' in row
    detail = client.get(f"/ui/hosts/{host_id}/live").get_data(as_text=True)
    assert "partitioning — sda (35%)" in detail and 'data-percent="35"' in detail
    client.post("/api/v1/installs/done", headers=auth)
    row = client.get("/ui/hosts/live").get_data(as_text=True)
    assert "data-percent" not in row and 'data-state="installed"' in row


def test_host_page_masks_the_answer_file_and_leaves_the_token_alone(
    signed_in: Client, database: Database
) -> None:
    client, _ = signed_in
    host_id = _add(
        database,
        "52:54:00:00:00:21",
        hostname="echo",
        profile="demo",
        pool="rack1",
        facts={"management_ip": "192.0.2.21", "cores": 32},
    )
    token = _install_token(database, host_id)
    before = _host(database, host_id).install_token_hash
    page = client.get(f"/ui/hosts/{host_id}").get_data(as_text=True)
    assert "&lt;root-password type=&#34;hash&#34;&gt;********&lt;/root-password&gt;" in page
    assert ROOT_HASH not in page and ROOT_HASH.split("$")[3] not in page
    assert "INSTALL-TOKEN-HIDDEN" in page and token not in page
    assert "&lt;hostname&gt;echo&lt;/hostname&gt;" in page
    assert "192.0.2.21" in page and "management_ip" in page
    assert _host(database, host_id).install_token_hash == before  # still the installer's token
    without_profile = _add(database, "52:54:00:00:00:22")
    page = client.get(f"/ui/hosts/{without_profile}").get_data(as_text=True)
    assert "has no profile, so no answer file" in page
    assert client.get("/ui/hosts/9999").status_code == 404


def test_assign_a_discovered_host(signed_in: Client, database: Database) -> None:
    client, csrf = signed_in
    host_id = _add(database, "52:54:00:00:00:31")
    page = client.get("/ui/discovered").get_data(as_text=True)
    assert "52:54:00:00:00:31" in page
    response = client.post(
        f"/ui/hosts/{host_id}/assign",
        follow_redirects=True,
        data={"csrf": csrf, "profile": "demo", "pool": "rack2", "next": "/ui/discovered"},
    )
    assert response.request.path == "/ui/discovered"
    assert "profile demo, pool rack2; it is ready." in response.get_data(as_text=True)
    host = _host(database, host_id)
    assert (host.state, host.profile_id is not None, host.pool_id is not None) == (
        "ready",
        True,
        True,
    )
    assert "52:54:00:00:00:31" not in client.get("/ui/discovered").get_data(as_text=True)


def test_reinstall_and_remove(signed_in: Client, database: Database) -> None:
    client, csrf = signed_in
    host_id = _add(database, "52:54:00:00:00:41", hostname="foxtrot", profile="demo")
    auth = {"Authorization": f"Bearer {_install_token(database, host_id)}"}
    client.post("/api/v1/installs/failed", headers=auth, json={"reason": "disk sda is gone"})
    assert "disk sda is gone" in client.get(f"/ui/hosts/{host_id}").get_data(as_text=True)
    response = client.post(
        f"/ui/hosts/{host_id}/reinstall", data={"csrf": csrf}, follow_redirects=True
    )
    assert "foxtrot will reinstall at its next network boot." in response.get_data(as_text=True)
    host = _host(database, host_id)
    assert host.state == State.READY and host.install_token_hash is None
    with database.scope(write=False) as session:
        last = list_events(session, host=get_host(session, host_id))[-1]
    assert last.message == "reinstall requested from the dashboard by operator"

    bare = _add(database, "52:54:00:00:00:42", hostname="golf")
    response = client.post(
        f"/ui/hosts/{bare}/reinstall", data={"csrf": csrf}, follow_redirects=True
    )
    assert "host golf has no profile; assign one to install it" in response.get_data(as_text=True)
    assert _host(database, bare).state == State.DISCOVERED

    response = client.post(
        f"/ui/hosts/{host_id}/remove", data={"csrf": csrf}, follow_redirects=True
    )
    assert response.request.path == "/ui/"
    assert "foxtrot removed from the inventory." in response.get_data(as_text=True)
    with database.scope(write=False) as session, pytest.raises(Exception, match="no host"):
        get_host(session, host_id)


def test_pools_page_after_real_registrations(signed_in: Client, database: Database) -> None:
    client, _ = signed_in
    for number, changes in ((1, {}), (2, {}), (3, {"management_vlan": 10})):
        token = installed_host(database, number, pool="rack1", hostname=f"node{number:04d}")
        answer = client.post(
            "/api/v1/register",
            json=facts(number, **changes),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.get_json()
    page = client.get("/ui/pools").get_data(as_text=True)
    rack1 = page[page.index('id="pool-rack1"') : page.index('id="pool-rack2"')]
    assert 'Master:\n    <strong>node0001</strong> <span class="mono">192.0.2.1</span>' in rack1
    assert "Members (2)" in rack1 and "node0002" in rack1
    assert "Refused (1)" in rack1 and "node0003" in rack1
    assert "Management interface is VLAN 10, the master&#39;s is untagged." in rack1
    assert "No member yet." in page[page.index('id="pool-rack2"') :]
