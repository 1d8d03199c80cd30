"""A hostile provisioning network: a machine asking with another host's MAC, using another
host's token from its own address, registering as someone it is not; the concurrency cap.

Through the Flask app with each request's source address set as the network would set it."""

from __future__ import annotations

import ipaddress

import pytest

from pxe.boot.decide import plan_for_mac
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store import hosts, profiles
from pxe.store.events import list_events
from pxe.store.lifecycle import State
from pxe.store.macs import slaac_address
from pxe.store.pools import create_pool
from pxe.store.tokens import create_api_token
from pxe.tftp.files import GeneratedFiles
from pxe.web.app import create_app
from tests.dashboard.forms import sign_in
from tests.support.boot_script import answer_file_path, install_token
from tests.support.registering import facts

MAC = "52:54:00:12:34:56"
UUID = "4c4c4544-0042-3510-8052-b4c04f564433"
HOST_IP = "192.0.2.10"
EVIL_IP = "192.0.2.66"


def _from(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def _boot(client, address: str = HOST_IP, mac: str = MAC, **identity) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"mac": mac, **identity}.items())
    return client.get(f"/boot/ipxe?{query}", **_from(address)).text


def _ready(database: Database, mac: str = MAC, name: str = "node1", **fields) -> int:
    with database.scope() as s:
        if not profiles.list_profiles(s):
            profiles.create_profile(s, "demo", release="demo", template="fresh-dhcp")
        return hosts.add_host(s, macs=[mac], hostname=name, profile="demo", **fields).id


def _security_events(database: Database, host_id: int) -> list[str]:
    with database.scope(write=False) as s:
        host = hosts.get_host(s, host_id)
        return [e.step for e in list_events(s, host=host, kind="security")]


def _metric(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return 0.0


def test_the_token_is_handed_out_once_per_install_cycle(client, database, demo_release) -> None:
    host_id = _ready(database)
    first = answer_file_path(_boot(client))
    retried = answer_file_path(_boot(client))  # a firmware retry before the answer file: reissued
    assert client.get(first, **_from(HOST_IP)).status_code == 403
    assert client.get(retried, **_from(HOST_IP)).status_code == 200
    # Anyone asking with the host's MAC now gets a wait, no token, and the install goes on.
    again = _boot(client, EVIL_IP)
    assert "token=" not in again and "answerfile=" not in again
    assert "sleep" in again and "already fetched its answer file" in again
    assert client.get(retried, **_from(HOST_IP)).status_code == 200  # still the host's token
    with database.scope(write=False) as s:
        host = hosts.get_host(s, host_id)
        assert (host.token_bound_addr, host.install_attempts) == (HOST_IP, 1)
    # A reinstall starts a new cycle: a new token again.
    with database.scope() as s:
        hosts.reinstall_host(s, hosts.get_host(s, host_id))
    fresh = answer_file_path(_boot(client, EVIL_IP))
    assert install_token(fresh) != install_token(retried)
    assert client.get(retried, **_from(HOST_IP)).status_code == 403


def test_a_token_used_from_another_address_is_refused_and_reported(
    client, database, demo_release
) -> None:
    host_id = _ready(database)
    path = answer_file_path(_boot(client))
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    stolen = {"Authorization": f"Bearer {install_token(path)}"}
    refused = client.get(path, **_from(EVIL_IP))
    assert refused.status_code == 403 and HOST_IP not in refused.json["error"]
    for route, body in (("events", {"step": "partition"}), ("failed", {"reason": "x"}),
                        ("done", None)):  # fmt: skip
        answer = client.post(f"/api/v1/installs/{route}", json=body, headers=stolen,
                             **_from(EVIL_IP))  # fmt: skip
        assert answer.status_code == 403, route
    with database.scope(write=False) as s:
        assert hosts.get_host(s, host_id).state == State.READY  # nothing the thief sent counted
    assert _security_events(database, host_id) == ["token-address"] * 4
    assert _metric(client, "xcp_provision_security_events_total", kind="token-address") == 4
    ok = client.post("/api/v1/installs/events", json={"step": "partition"}, headers=stolen,
                     **_from(HOST_IP))  # fmt: skip
    assert ok.status_code == 202


def test_behind_a_proxy_the_forwarded_address_counts_only_from_a_trusted_one(
    client, database, demo_release
) -> None:
    host_id = _ready(database)
    path = answer_file_path(_boot(client))
    via_nginx = {"headers": {"X-Forwarded-For": HOST_IP}, **_from("127.0.0.1")}
    assert client.get(path, **via_nginx).status_code == 200
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    # A host on the network cannot claim to be another by sending the header itself.
    forged = {"headers": {"X-Forwarded-For": HOST_IP}, **_from(EVIL_IP)}
    assert client.get(path, **forged).status_code == 403
    assert _security_events(database, host_id) == ["token-address"]


def test_tftp_files_follow_the_same_rule(settings, database, demo_release, client) -> None:
    _ready(database)
    files = GeneratedFiles(plan_for_mac(settings, database), "http://pxe.test:8080")
    name = "pxelinux.cfg/01-" + MAC.replace(":", "-")
    first = files(name, HOST_IP).decode()
    path = answer_file_path(first)
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    later = files(name, EVIL_IP).decode()
    assert "token=" not in later and "answerfile=" not in later


def _registering_host(client, database) -> tuple[int, str]:
    """An installed host whose install fetched its answer file from HOST_IP."""
    host_id = _ready(database, mac=facts(1)["mac"], pool=None)
    path = answer_file_path(_boot(client, mac=facts(1)["mac"], uuid=UUID, serial="SN-1"))
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    token = install_token(path)
    done = client.post("/api/v1/installs/done", headers={"Authorization": f"Bearer {token}"},
                       **_from(HOST_IP))  # fmt: skip
    assert done.status_code == 200
    return host_id, token


@pytest.fixture
def rack_pool(database: Database) -> None:
    with database.scope() as s:
        create_pool(s, "rack1")


def test_the_pool_secret_goes_only_to_the_host_the_server_knows(
    client, database, demo_release, rack_pool
) -> None:
    host_id, token = _registering_host(client, database)
    auth = {"Authorization": f"Bearer {token}"}
    body = facts(1, pool="rack1", smbios_uuid=UUID, serial="SN-1")
    elsewhere = client.post("/api/v1/register", json=body, headers=auth, **_from(EVIL_IP))
    assert elsewhere.status_code == 403 and "pool_secret" not in elsewhere.json
    assert "address" in elsewhere.json["error"]
    other_uuid = {**body, "smbios_uuid": "4c4c4544-0000-0000-0000-000000000001"}
    wrong = client.post("/api/v1/register", json=other_uuid, headers=auth, **_from(HOST_IP))
    assert wrong.status_code == 403 and "SMBIOS UUID" in wrong.json["error"]
    wrong_serial = client.post("/api/v1/register", json={**body, "serial": "SN-2"}, headers=auth,
                               **_from(HOST_IP))  # fmt: skip
    assert wrong_serial.status_code == 403 and "serial" in wrong_serial.json["error"]
    assert _security_events(database, host_id) == [
        "token-address", "register-identity", "register-identity"]  # fmt: skip
    with database.scope(write=False) as s:
        assert hosts.get_host(s, host_id).state == State.INSTALLED
    admitted = client.post("/api/v1/register", json=body, headers=auth, **_from(HOST_IP))
    assert admitted.status_code == 200 and admitted.json["pool_secret"]


def test_an_autoconf_address_passes_with_the_inventorys_mac_alone(
    client, database, demo_release, rack_pool
) -> None:
    """dom0 on SLAAC registers from the router's prefix and its MAC's EUI-64, whatever the
    prefix; another MAC's identifier, or its own on a link-local address, is refused."""
    host_id, token = _registering_host(client, database)
    auth = {"Authorization": f"Bearer {token}"}
    body = facts(1, pool="rack1", smbios_uuid=UUID, serial="SN-1")
    prefix = ipaddress.IPv6Network("2001:db8:7::/64")
    another_mac = slaac_address(prefix, facts(2)["mac"])
    link_local = slaac_address(ipaddress.IPv6Network("fe80::/64"), body["mac"])
    for source in (another_mac, link_local):
        refused = client.post("/api/v1/register", json=body, headers=auth, **_from(str(source)))
        assert refused.status_code == 403 and "autoconfiguration" in refused.json["error"]
    assert _security_events(database, host_id) == ["token-address"] * 2
    own = str(slaac_address(prefix, body["mac"]))
    admitted = client.post("/api/v1/register", json={**body, "management_ip": own},
                           headers=auth, **_from(own))  # fmt: skip
    assert admitted.status_code == 200 and admitted.json["role"] == "master"


def _capped(settings: Settings, database: Database, cap: int):
    return create_app(settings.replace(max_concurrent_installs=cap), database=database)


def test_hosts_past_the_concurrency_cap_are_queued(settings, any_database, demo_release) -> None:
    """On both backends: the cap is checked in the token's conditional UPDATE."""
    database = any_database
    client = _capped(settings, database, 1).test_client()
    with database.scope() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'tests')}"}
    _ready(database, mac="52:54:00:00:00:01", name="first")
    _ready(database, mac="52:54:00:00:00:02", name="second")
    path = answer_file_path(_boot(client, mac="52:54:00:00:00:01"))
    queued = _boot(client, "192.0.2.11", mac="52:54:00:00:00:02")
    assert "token=" not in queued and "queued" in queued
    view = client.get("/api/v1/hosts/second", headers=auth).json
    assert (view["state"], view["queued"]) == ("ready", True)
    assert client.get("/api/v1/hosts/first", headers=auth).json["queued"] is False
    token = {"Authorization": f"Bearer {install_token(path)}"}
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    assert client.post("/api/v1/installs/done", headers=token, **_from(HOST_IP)).status_code == 200
    started = _boot(client, "192.0.2.11", mac="52:54:00:00:00:02")
    assert "answerfile=" in started
    assert client.get("/api/v1/hosts/second", headers=auth).json["queued"] is False


def test_the_dashboard_shows_security_events_queue_and_attempts(
    settings, database, demo_release, api_token
) -> None:
    client = _capped(settings, database, 1).test_client()
    sign_in(client, api_token)
    _ready(database, mac="52:54:00:00:00:01", name="first")
    second = _ready(database, mac="52:54:00:00:00:02", name="second")
    path = answer_file_path(_boot(client, mac="52:54:00:00:00:01"))
    assert client.get(path, **_from(HOST_IP)).status_code == 200
    assert client.get(path, **_from(EVIL_IP)).status_code == 403
    _boot(client, "192.0.2.11", mac="52:54:00:00:00:02")
    hosts_page = client.get("/ui/").get_data(as_text=True)
    assert 'id="security-events"' in hosts_page and "1 security event" in hosts_page
    assert "token-address" in hosts_page
    rows = client.get("/ui/hosts/live").get_data(as_text=True)
    assert "queued" in rows
    page = client.get(f"/ui/hosts/{second}").get_data(as_text=True)
    assert "Install attempts" in page and "queued" in page
