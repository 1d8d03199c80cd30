"""The same flows over real HTTP: waitress on a free loopback port, urllib as the client."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pxe.config import Settings
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.store.tokens import create_api_token
from pxe.web.app import create_app
from tests.support.boot_script import answer_file_url

Reply = tuple[int, bytes, dict[str, str]]


def _request(url: str, method: str = "GET", body: object = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> Reply:  # fmt: skip
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


@pytest.fixture
def server(tmp_path: Path, database: Database, demo_release: Path):
    # No public_url: hosts are told the address they reached us on.
    settings = Settings(data_dir=demo_release.parent.parent)
    with running_server(create_app(settings, database=database)) as running:
        yield running


def test_pxe_install_over_real_http(server, api_token: str, demo_release: Path) -> None:
    base = server.url
    status, body, _ = _request(f"{base}/boot/ipxe")
    assert status == 200
    assert body.decode().startswith(f"#!ipxe\nchain {base}/boot/ipxe?mac=${{net0/mac}}")
    status, _, _ = _request(
        f"{base}/api/v1/profiles", "POST",
        {"name": "demo", "release": "demo", "template": "fresh-dhcp"}, api_token,
    )  # fmt: skip
    assert status == 201
    status, body, _ = _request(
        f"{base}/api/v1/hosts", "POST", {"mac": "52:54:00:00:00:01", "hostname": "n1",
                                          "profile": "demo"}, api_token,
    )  # fmt: skip
    assert status == 201
    status, body, _ = _request(f"{base}/boot/ipxe?mac=52:54:00:00:00:01&arch=x86_64")
    script = body.decode()
    kernel_url = re.search(r"^kernel (\S+)", script, re.M)[1]
    answer_url = answer_file_url(script)
    assert kernel_url == f"{base}/releases/demo/installer-vmlinuz"
    status, kernel, headers = _request(kernel_url, headers={"Range": "bytes=0-15"})
    assert status == 206 and kernel == (demo_release / "installer-vmlinuz").read_bytes()[:16]
    status, answer, headers = _request(answer_url)
    assert status == 200 and b"<hostname>n1</hostname>" in answer
    assert headers["Content-Type"].startswith("application/xml")
    token = answer_url.split("token=")[1]
    assert _request(answer_url.split("?")[0])[0] == 401
    status, body, _ = _request(f"{base}/api/v1/installs/events", "POST",
                               {"step": "laydown", "percent": 50}, token)  # fmt: skip
    assert status == 202
    assert _request(f"{base}/api/v1/installs/done", "POST", None, token)[0] == 200
    assert _request(f"{base}/api/v1/installs/done", "POST", None, token)[0] == 409
    status, body, _ = _request(f"{base}/api/v1/hosts/n1", token=api_token)
    assert json.loads(body)["state"] == "installed"
    assert _request(f"{base}/api/v1/hosts/n1")[0] == 401
    assert _request(f"{base}/api/v1/hosts/n2", token=api_token)[0] == 404
    status, body, _ = _request(f"{base}/api/v1/hosts", "POST", {"mac": "nope"}, api_token)
    assert status == 400 and "not a MAC address" in json.loads(body)["error"]


def test_concurrent_discovery_records_each_host_once(
    tmp_path: Path, any_database: Database
) -> None:
    """Many machines booting at once, each asking twice at the same moment: SQLite queues the
    writers, PostgreSQL lets them race and the loser of a discovery retries."""
    macs = [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(60)]
    with any_database.scope() as session:
        token = create_api_token(session, "tests")
    # Every machine asks from loopback here: no per-address discovery limit.
    settings = Settings(data_dir=tmp_path / "data", discovery_rate=0)
    app = create_app(settings, database=any_database)
    with running_server(app) as server:

        def boot(mac: str) -> int:
            return _request(f"{server.url}/boot/ipxe?mac={mac}")[0]

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(boot, [m for m in macs for _ in (1, 2)]))
        _, body, _ = _request(f"{server.url}/api/v1/hosts?limit=1000", token=token)
    assert statuses == [200] * len(statuses)
    hosts = json.loads(body)["hosts"]
    assert sorted(m for h in hosts for m in h["macs"]) == sorted(macs)
    assert {h["state"] for h in hosts} == {"discovered"}
