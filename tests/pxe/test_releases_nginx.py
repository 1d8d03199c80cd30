"""Release files offloaded to a real nginx with X-Accel-Redirect (sendfile in the kernel)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxe.config import Settings
from pxe.db.session import Database
from pxe.web.app import create_app
from pxe.web.server import running_server

NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{upstream}; }}
        location /_releases/ {{
            internal;
            alias {releases}/;
            sendfile on;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx_front(tmp_path: Path, database: Database, demo_release: Path) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (make test installs nginx-light)"
    releases = demo_release.parent
    settings = Settings(data_dir=releases.parent, release_accel_prefix="/_releases/")
    work = tmp_path / "nginx"
    work.mkdir()
    port = _free_port()
    with running_server(create_app(settings, database=database)) as upstream:
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=port, upstream=upstream.port,
                                          releases=releases))
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)],
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", upstream.url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read(), dict(resp.headers)


def test_nginx_sends_release_files_we_resolved(nginx_front, demo_release: Path):
    front, upstream = nginx_front
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
