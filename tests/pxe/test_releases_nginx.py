"""Release files offloaded to a real nginx with X-Accel-Redirect (sendfile in the kernel), as
deploy/nginx.conf sets it up."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxe.config import Settings
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.web.app import create_app
from tests.support.nginx import shipped_nginx
from tests.support.serve import free_port


@pytest.fixture
def nginx_front(tmp_path: Path, database: Database, demo_release: Path) -> Iterator[str]:
    releases = demo_release.parent
    settings = Settings(data_dir=releases.parent, release_accel_prefix="/_releases/")
    with (
        running_server(create_app(settings, database=database)) as upstream,
        shipped_nginx(tmp_path / "nginx", free_port(), upstream.port, releases) as front,
    ):
        yield front, upstream


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read(), dict(resp.headers)


def test_nginx_sends_release_files_we_resolved(nginx_front, demo_release: Path):
    front, server = nginx_front
    upstream = server.url
    name = demo_release.name
    artefact = next(p for p in sorted(demo_release.iterdir()) if p.name != "manifest.json")
    expected = artefact.read_bytes()

    status, body, headers = _get(f"{upstream}/releases/{name}/{artefact.name}")
    assert status == 200 and body == b""
    assert headers["X-Accel-Redirect"] == f"/_releases/{name}/{artefact.name}"

    status, body, headers = _get(f"{front}/releases/{name}/{artefact.name}")
    assert status == 200 and body == expected
    assert "X-Accel-Redirect" not in headers
    status, body, _ = _get(f"{front}/releases/{name}/{artefact.name}", {"Range": "bytes=4-15"})
    assert status == 206 and body == expected[4:16]


def test_the_internal_location_is_not_reachable_directly(nginx_front, demo_release: Path):
    front, _ = nginx_front
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{front}/_releases/{demo_release.name}/manifest.json")
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{front}/releases/{demo_release.name}/..%2f..%2finventory.sqlite3")
    assert err.value.code == 404


def test_requests_reuse_kept_alive_connections_to_serve(nginx_front, demo_release: Path):
    """A rack's boot is hundreds of small requests: nginx keeps its connections to serve open
    between them instead of connecting anew for each."""
    front, server = nginx_front
    for _ in range(5):
        assert _get(f"{front}/healthz")[0] == 200
    kept = subprocess.run(
        ["ss", "-Htn", "state", "established", "dst", f"127.0.0.1:{server.port}"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(kept) >= 1, "nginx closed its connection to serve after the response"
