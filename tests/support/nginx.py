"""nginx run as deploy/nginx.conf ships it, pointed at a test's ports and data directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from pathlib import Path

from common import runner

DEPLOY_NGINX = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


def shipped_server(port: int, upstream_port: int, releases: Path) -> str:
    """The upstream and server blocks we ship, listening on ``port`` of the loopback, in front
    of ``serve`` on ``upstream_port``, sending files from ``releases``."""
    text = DEPLOY_NGINX.read_text()
    for shipped, local in (("listen 80;", f"listen 127.0.0.1:{port};"),
                           ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
                           ("/var/lib/xcp-provision/releases/", f"{releases.resolve()}/")):
        assert shipped in text, f"{DEPLOY_NGINX} no longer has {shipped!r}"
        text = text.replace(shipped, local)
    return text


@contextmanager
def running_nginx(work: Path, port: int, server: str) -> Iterator[str]:
    """nginx with ``server`` (blocks listening on ``port`` of the loopback) in its http block
    and its files under ``work``, until the block ends; its URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (make test installs nginx-light)"
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    default_type application/octet-stream;
{server}
}}
""")  # fmt: skip
    proc = runner.start([nginx, "-c", conf, "-p", work, "-g", "daemon off;"],
                        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def shipped_nginx(work: Path, port: int, upstream_port: int, releases: Path) -> ContextManager[str]:
    """:func:`running_nginx` with the blocks we ship (:func:`shipped_server`)."""
    return running_nginx(work, port, shipped_server(port, upstream_port, releases))
