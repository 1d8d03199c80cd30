"""The dom0 first-boot agent against a real HTTP server on loopback.

The agent runs under the system's /usr/bin/python3 with no venv, as in dom0, which also proves
it needs nothing beyond the standard library. Its root is a temporary directory.
"""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common import dom0_layout
from dom0.firstboot import agent
from images.overlay import AGENT_SOURCE, install_overlay

SYSTEM_PYTHON = "/usr/bin/python3"
MEMBER = {
    "state": "in-pool",
    "pool": "rack1",
    "role": "member",
    "master_address": "10.0.0.1",
    "pool_secret": "s3cret 'quoted'",
    "reasons": [],
}


@dataclass
class Registrar:
    """A scripted registration server: answers each POST with the next (status, body)."""

    answers: list[tuple[int, dict]]
    requests: list[dict] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def registrar() -> Iterator[Registrar]:
    state = Registrar(answers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            status, body = state.answers.pop(0) if state.answers else (500, {"error": "no"})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _root(tmp_path: Path, server_url: str, **extra: object) -> Path:
    root = tmp_path / "root"
    install_overlay(root, "debian12-test")
    config = {
        "server_url": server_url,
        "token": "tok-123",
        "pool": "rack1",
        "hostname": "host7",
        "mac": "52:54:00:12:34:56",
        **extra,
    }
    path = root / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")
    path.write_text(json.dumps(config))
    return root


def _run_agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEM_PYTHON, str(AGENT_SOURCE), "--root", str(root), "--backoff-base", "0.01", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )


def _hook(root: Path, script: str) -> Path:
    hook = root / dom0_layout.POOL_JOIN_HOOK.lstrip("/")
    hook.write_text("#!/bin/sh\n" + script)
    hook.chmod(0o755)
    return hook


def _enabled(root: Path) -> bool:
    return (root / dom0_layout.UNIT_WANTS.lstrip("/")).is_symlink()


def test_registers_writes_pool_conf_runs_hook_and_disables_itself(
    tmp_path: Path, registrar: Registrar
) -> None:
    root = _root(tmp_path, registrar.url)
    seen = tmp_path / "hook-env"
    _hook(root, f'env | grep ^XCP_POOL_ | sort > "{seen}"\n')
    registrar.answers = [(200, MEMBER)]
    assert _enabled(root)

    result = _run_agent(root)
    assert result.returncode == 0, result.stderr

    (request,) = registrar.requests
    assert request["path"] == "/api/v1/register"
    assert request["authorization"] == "Bearer tok-123"
    assert request["content_type"] == "application/json"
    facts = request["body"]
    for key in (
        "mac", "cpu_vendor", "cpu_model", "cpu_flags", "cores", "memory", "xen_version",
        "dom0_release", "network_backend", "management_ip", "management_vlan", "nics", "disks",
    ):  # fmt: skip
        assert key in facts, key
    assert facts["hostname"] == "host7"
    assert facts["pool"] == "rack1"
    assert facts["mac"] == "52:54:00:12:34:56"
    assert facts["dom0_release"] == "debian12-test"
    assert facts["network_backend"] == "none"  # loopback: no bridge carries it
    assert facts["management_ip"] == "127.0.0.1"
    assert facts["cores"] >= 1
    assert facts["memory"] > 0
    assert facts["cpu_vendor"]

    pool_conf = root / dom0_layout.POOL_CONFIG.lstrip("/")
    assert stat.S_IMODE(pool_conf.stat().st_mode) == 0o600
    sourced = subprocess.run(
        [
            "sh",
            "-c",
            f'. "{pool_conf}"; printf "%s|%s|%s" "$ROLE" "$MASTER_ADDRESS" "$POOL_SECRET"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sourced == "member|10.0.0.1|s3cret 'quoted'"
    assert seen.read_text().splitlines() == [
        "XCP_POOL_MASTER_ADDRESS=10.0.0.1",
        "XCP_POOL_NAME=rack1",
        "XCP_POOL_ROLE=member",
        "XCP_POOL_SECRET=s3cret 'quoted'",
        "XCP_POOL_STATE=in-pool",
    ]
    assert not _enabled(root)
    assert (root / dom0_layout.DONE_MARKER.lstrip("/")).is_file()
    config = json.loads((root / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).read_text())
    assert "token" not in config
    assert config["server_url"] == registrar.url

    again = _run_agent(root)
    assert again.returncode == 0
    assert "already registered" in again.stderr
    assert len(registrar.requests) == 1


def test_retries_while_the_server_answers_5xx(tmp_path: Path, registrar: Registrar) -> None:
    root = _root(tmp_path, registrar.url)
    registered = {**MEMBER, "state": "registered", "role": None, "reasons": ["CPU vendor differs"]}
    registrar.answers = [(503, {"error": "busy"}), (500, {"error": "db"}), (200, registered)]
    result = _run_agent(root)
    assert result.returncode == agent.EXIT_NOT_JOINED, result.stderr
    assert len(registrar.requests) == 3
    assert result.stderr.count("retrying in") == 2
    assert "HTTP 503" in result.stderr
    assert "reasons: CPU vendor differs" in result.stderr
    assert "STATE=registered" in (root / dom0_layout.POOL_CONFIG.lstrip("/")).read_text()
    assert _enabled(root)  # refused by the pool: armed for the next try


def test_unreachable_server_is_retried_then_given_up_when_bounded(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = _root(tmp_path, f"http://127.0.0.1:{port}")
    result = _run_agent(root, "--max-attempts", "3")
    assert result.returncode == agent.EXIT_GAVE_UP
    assert result.stderr.count("unreachable") == 3
    assert "giving up after 3 attempts" in result.stderr
    assert _enabled(root)
    assert not (root / dom0_layout.DONE_MARKER.lstrip("/")).exists()


def test_no_local_address_yet_is_waited_out_not_reported(tmp_path: Path) -> None:
    """Without a route (here: a name that never resolves) there is no management_ip to send."""
    root = _root(tmp_path, "http://registrar.invalid:8080")
    result = _run_agent(root, "--max-attempts", "2")
    assert result.returncode == agent.EXIT_GAVE_UP
    assert result.stderr.count("no route to http://registrar.invalid:8080 yet") == 2
    assert _enabled(root)


def test_4xx_stops_at_once_with_a_clear_line(tmp_path: Path, registrar: Registrar) -> None:
    root = _root(tmp_path, registrar.url)
    registrar.answers = [(403, {"error": "token already spent"})]
    result = _run_agent(root)
    assert result.returncode == agent.EXIT_REFUSED
    assert len(registrar.requests) == 1
    assert "registration refused, not retrying: HTTP 403" in result.stderr
    assert "token already spent" in result.stderr
    assert _enabled(root)
    assert not (root / dom0_layout.POOL_CONFIG.lstrip("/")).exists()


def test_failing_hook_is_reported_but_the_agent_still_disables(
    tmp_path: Path, registrar: Registrar
) -> None:
    root = _root(tmp_path, registrar.url)
    _hook(root, "echo 'xe: cannot contact master' >&2\nexit 4\n")
    registrar.answers = [(200, MEMBER)]
    result = _run_agent(root)
    assert result.returncode == agent.EXIT_HOOK
    assert "failed with exit code 4: xe: cannot contact master" in result.stderr
    assert not _enabled(root)


def test_a_refused_join_keeps_the_agent_armed_with_its_token(
    tmp_path: Path, registrar: Registrar
) -> None:
    root = _root(tmp_path, registrar.url)
    ran = tmp_path / "ran"
    _hook(root, f'touch "{ran}"\n')
    refused = {**MEMBER, "state": "registered", "role": None, "master_address": None,
               "pool_secret": None, "reasons": ["CPU vendor AuthenticAMD differs"]}
    registrar.answers = [(200, refused)]
    result = _run_agent(root)
    assert result.returncode == agent.EXIT_NOT_JOINED
    assert "still armed" in result.stderr
    assert _enabled(root) and not ran.exists()
    config = json.loads((root / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).read_text())
    assert config["token"] == "tok-123"

    registrar.answers = [(200, MEMBER)]  # the operator set force on the pool
    assert _run_agent(root).returncode == agent.EXIT_OK
    assert ran.exists() and not _enabled(root)
    assert registrar.requests[-1]["authorization"] == "Bearer tok-123"


def test_hook_is_not_run_for_the_master(tmp_path: Path, registrar: Registrar) -> None:
    root = _root(tmp_path, registrar.url)
    ran = tmp_path / "ran"
    _hook(root, f'touch "{ran}"\n')
    registrar.answers = [(201, {**MEMBER, "role": "master", "master_address": None})]
    assert _run_agent(root).returncode == 0
    assert not ran.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        (json.dumps({"server_url": "http://x"}), "lacks token"),
        (json.dumps({"server_url": "file:///etc/passwd", "token": "t"}), "is not an http(s) URL"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, config: str | None, message: str) -> None:
    root = tmp_path / "root"
    install_overlay(root, "x")
    if config is not None:
        (root / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).write_text(config)
    result = _run_agent(root)
    assert result.returncode == agent.EXIT_CONFIG
    assert message in result.stderr


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delays = agent.backoff_delays(1.0, 30.0, random.Random(7))
    got = [next(delays) for _ in range(10)]
    for attempt, delay in enumerate(got):
        ceiling = min(30.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(got) <= 30.0
    assert len(set(got)) == len(got)


def test_agent_paths_match_the_layout_contract() -> None:
    assert "/" + agent.CONFIG == dom0_layout.FIRSTBOOT_CONFIG
    assert "/" + agent.POOL_CONF == dom0_layout.POOL_CONFIG
    assert "/" + agent.HOOK == dom0_layout.POOL_JOIN_HOOK
    assert "/" + agent.UNIT_WANTS == dom0_layout.UNIT_WANTS
    assert "/" + agent.DONE == dom0_layout.DONE_MARKER
    assert "/" + agent.ANSWER == dom0_layout.REGISTRATION_ANSWER
    assert "/" + agent.RELEASE == dom0_layout.RELEASE_FILE
    unit = (AGENT_SOURCE.parent / dom0_layout.UNIT_NAME).read_text()
    assert f"ExecStart=/usr/bin/python3 {dom0_layout.AGENT}" in unit
    assert f"ConditionPathExists=!{dom0_layout.DONE_MARKER}" in unit


def test_firmware_identity_is_read_from_dmi_and_left_out_when_absent(tmp_path: Path) -> None:
    dmi = tmp_path / "dmi"
    assert agent.firmware_identity(dmi) == {}
    dmi.mkdir()
    (dmi / "product_uuid").write_text("4c4c4544-0042-3010-8052-b4c04f4e4d32\n")
    (dmi / "product_serial").write_text("CZ1234\n")
    assert agent.firmware_identity(dmi) == {
        "smbios_uuid": "4c4c4544-0042-3010-8052-b4c04f4e4d32",
        "serial": "CZ1234",
    }
