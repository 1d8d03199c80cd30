"""The real first-boot agent against the real registration server (waitress on loopback).

This machine is not a Xen host, so a stand-in ``xl`` on the agent's PATH answers ``xl info`` as
Xen 4.17 would; everything else (facts from /proc and /sys, HTTP, the server's checks, the pool
answer, the hook, the self-disable) is the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from common import dom0_layout
from images.overlay import AGENT_SOURCE, install_overlay
from pxe.db.models import Event, utcnow
from pxe.db.session import Database
from pxe.registration import JOINED, REPLAY_WINDOW
from pxe.store.pools import get_pool, pool_members
from tests.support.registering import (
    events_of,
    host_row,
    installed_host,
    mac_of,
    rack_inventory,
    serving,
)

XL_INFO = """\
host                   : xenhost
release                : 6.1.0-56-amd64
nr_cpus                : 16
total_memory           : 65442
xen_major              : 4
xen_minor              : 17
xen_extra              : .7
xen_version            : 4.17.7
"""


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with rack_inventory(tmp_path) as db:
        yield db


@pytest.fixture
def server(tmp_path: Path, database: Database) -> Iterator[str]:
    with serving(tmp_path, database) as url:
        yield url


def _xen_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "xen-bin"
    bin_dir.mkdir(exist_ok=True)
    xl = bin_dir / "xl"
    xl.write_text(f"#!/bin/sh\n[ \"$1\" = info ] || exit 1\ncat <<'EOF'\n{XL_INFO}EOF\n")
    xl.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def _host_root(tmp_path: Path, name: str, server: str, token: str, number: int) -> Path:
    root = tmp_path / name
    install_overlay(root, "debian12-xcp.test")
    (root / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).write_text(
        json.dumps(
            {"server_url": server, "token": token, "pool": "rack1", "hostname": name,
             "mac": mac_of(number)}
        )
    )  # fmt: skip
    return root


def _agent(root: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/python3", str(AGENT_SOURCE), "--root", str(root), "--max-attempts", "3",
         "--backoff-base", "0.05"],
        capture_output=True, text=True, timeout=120, env={"PATH": path}, check=False,
    )  # fmt: skip


def _pool_conf(root: Path) -> dict[str, str]:
    out = subprocess.run(
        ["sh", "-c", f'set -a; . "{root / dom0_layout.POOL_CONFIG.lstrip("/")}"; env'],
        capture_output=True, text=True, check=True, env={},
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_two_hosts_register_master_then_member_who_runs_the_join_hook(
    tmp_path: Path, server: str, database: Database
) -> None:
    path = _xen_path(tmp_path)
    master = _host_root(tmp_path, "node1", server, installed_host(database, 1, pool="rack1"), 1)
    member = _host_root(tmp_path, "node2", server, installed_host(database, 2, pool="rack1"), 2)
    joined = tmp_path / "joined"
    hook = member / dom0_layout.POOL_JOIN_HOOK.lstrip("/")
    hook.write_text(f'#!/bin/sh\necho "$XCP_POOL_MASTER_ADDRESS $XCP_POOL_SECRET" > "{joined}"\n')
    hook.chmod(0o755)

    first = _agent(master, path)
    assert first.returncode == 0, first.stderr
    assert "registered: state in-pool, pool rack1, role master" in first.stderr
    second = _agent(member, path)
    assert second.returncode == 0, second.stderr
    assert "role member" in second.stderr

    master_conf, member_conf = _pool_conf(master), _pool_conf(member)
    assert master_conf["ROLE"] == "master"
    assert member_conf["ROLE"] == "member"
    assert member_conf["MASTER_ADDRESS"] == "127.0.0.1"
    assert member_conf["POOL_SECRET"] == master_conf["POOL_SECRET"] != ""
    assert joined.read_text().split() == ["127.0.0.1", master_conf["POOL_SECRET"]]
    for root in (master, member):
        assert not (root / dom0_layout.UNIT_WANTS.lstrip("/")).is_symlink()

    with database.scope(write=False) as session:
        pool = get_pool(session, "rack1")
        members = {host.hostname: host for host in pool_members(session, pool)}
        assert set(members) == {"node1", "node2"}
        assert pool.master is not None
        assert pool.master.hostname == "node1"
        assert members["node2"].facts["xen_version"] == "4.17.7"
        assert members["node2"].facts["memory"] == 65442


def test_a_boot_cut_short_after_registering_finishes_from_the_kept_answer(
    tmp_path: Path, server: str, database: Database
) -> None:
    """The install token is spent by the join; a host that lost power before the agent disabled
    itself (here: killed from inside the pool-join hook, as a power cut would stop it) must not
    need it again, even once the server's replay window has passed."""
    path = _xen_path(tmp_path)
    assert _agent(_host_root(tmp_path, "node1", server,
                             installed_host(database, 1, pool="rack1"), 1), path).returncode == 0
    member = _host_root(tmp_path, "node2", server, installed_host(database, 2, pool="rack1"), 2)
    hook = member / dom0_layout.POOL_JOIN_HOOK.lstrip("/")
    hook.write_text("#!/bin/sh\nkill -9 $PPID\nsleep 10\n")
    hook.chmod(0o755)

    cut = _agent(member, path)
    assert cut.returncode == -9, cut.stderr
    assert (member / dom0_layout.UNIT_WANTS.lstrip("/")).is_symlink()  # still armed
    kept = member / dom0_layout.REGISTRATION_ANSWER.lstrip("/")
    assert kept.stat().st_mode & 0o777 == 0o600
    with database.scope() as session:  # long after the join: the token opens nothing now
        session.execute(
            update(Event)
            .where(Event.host_id == host_row(database, 2).id, Event.kind == JOINED)
            .values(time=utcnow() - REPLAY_WINDOW - timedelta(minutes=1))
        )
    joined = tmp_path / "joined"
    hook.write_text(f'#!/bin/sh\necho "$XCP_POOL_ROLE $XCP_POOL_MASTER_ADDRESS" > "{joined}"\n')

    after = _agent(member, path)
    assert after.returncode == 0, after.stderr
    assert "finishing now" in after.stderr
    assert joined.read_text().split() == ["member", "127.0.0.1"]
    assert not (member / dom0_layout.UNIT_WANTS.lstrip("/")).is_symlink()
    assert (member / dom0_layout.DONE_MARKER.lstrip("/")).exists()
    assert not kept.exists()
    assert "token" not in json.loads(
        (member / dom0_layout.FIRSTBOOT_CONFIG.lstrip("/")).read_text())
    assert len(events_of(database, 2, JOINED)) == 1  # registered once
    report = json.loads((member / dom0_layout.REPORT_CONFIG.lstrip("/")).read_text())
    assert report["token"]
