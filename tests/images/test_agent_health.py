"""The first-boot agent's health reports: its md reader on sysfs-shaped trees, and ``--report``
against the real server (waitress on loopback), run by the system's python3 as in dom0.

This machine's kernel has no md, so the arrays are directory trees laid out as
``/sys/block/mdN/md/`` is (the files the kernel documents in admin-guide/md.rst, with the
values it writes); everything else is the real thing: the stand-in ``xl`` aside (as in
test_agent_with_server.py), the agent registers for real, keeps its report token and reports.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import dom0_layout, registration_key, wire
from dom0.firstboot import agent
from images.overlay import AGENT_SOURCE, install_overlay
from pxe.db.models import HostHealth
from pxe.db.session import Database
from pxe.store.hosts import get_host, reinstall_host
from tests.support.registering import installed_host, mac_of, rack_inventory, serving

XL_INFO = "xen_major : 4\nxen_minor : 17\nxen_extra : .7\nnr_cpus : 4\ntotal_memory : 8192\n"


def md(sys_block: Path, name: str, **files: str) -> Path:
    """An md device's sysfs directory holding ``files`` (md/level, md/raid_disks...)."""
    where = sys_block / name / "md"
    where.mkdir(parents=True)
    for key, value in files.items():
        (where / key).write_text(value + "\n")
    return where


def mirror(sys_block: Path, name: str = "md127", **changes: str) -> Path:
    files = {"level": "raid1", "raid_disks": "2", "degraded": "0", "array_state": "clean",
             "sync_action": "idle", "sync_completed": "none", **changes}  # fmt: skip
    return md(sys_block, name, **files)


def test_the_reader_sees_clean_degraded_rebuilding_and_striped_arrays(tmp_path: Path) -> None:
    sys_block = tmp_path / "sys" / "block"
    mirror(sys_block, "md0")
    mirror(sys_block, "md1", degraded="1", array_state="active")
    mirror(sys_block, "md2", degraded="1", sync_action="recover",
           sync_completed="25165824 / 100663296")  # fmt: skip
    md(sys_block, "md3", level="raid0", raid_disks="2", array_state="clean")  # no sync at all
    md(sys_block, "md4", level="container", raid_disks="0", array_state="inactive")  # IMSM
    (sys_block / "md5" / "md").mkdir(parents=True)  # a node nothing was assembled into
    (sys_block / "sda").mkdir()

    arrays = agent.raid_arrays(sys_block)

    assert arrays == [
        {"name": "md0", "level": "raid1", "members": 2, "expected": 2, "array_state": "clean",
         "sync_action": "idle", "progress": None},
        {"name": "md1", "level": "raid1", "members": 1, "expected": 2, "array_state": "active",
         "sync_action": "idle", "progress": None},
        {"name": "md2", "level": "raid1", "members": 1, "expected": 2, "array_state": "clean",
         "sync_action": "recover", "progress": 25.0},
        {"name": "md3", "level": "raid0", "members": 2, "expected": 2, "array_state": "clean",
         "sync_action": None, "progress": None},
    ]  # fmt: skip
    assert agent.raid_arrays(tmp_path / "nothing") == []


def test_the_agents_paths_and_units_are_the_contracts(tmp_path: Path) -> None:
    assert "/" + agent.REPORT_CONFIG == dom0_layout.REPORT_CONFIG
    assert agent.REGISTER_PATH == wire.REGISTER
    assert agent.HEALTH_PATH == wire.HEALTH
    assert agent.REGISTRATION_KEY == registration_key.FIELD
    root = tmp_path / "root"
    install_overlay(root, "debian12-test")
    service = dom0_layout.inside(root, dom0_layout.REPORT_UNIT).read_text()
    assert f"ExecStart=/usr/bin/python3 {dom0_layout.AGENT} --report" in service
    assert f"ConditionPathExists={dom0_layout.REPORT_CONFIG}" in service
    assert "OnCalendar=" in dom0_layout.inside(root, dom0_layout.REPORT_TIMER).read_text()
    for wants, unit in (
        (dom0_layout.REPORT_UNIT_WANTS, dom0_layout.REPORT_UNIT),
        (dom0_layout.REPORT_TIMER_WANTS, dom0_layout.REPORT_TIMER),
    ):
        assert os.readlink(dom0_layout.inside(root, wants)) == unit


def test_the_report_units_verify(tmp_path: Path) -> None:
    systemd_analyze = shutil.which("systemd-analyze")
    assert systemd_analyze, "systemd-analyze is not installed (Debian's systemd)"
    units = [AGENT_SOURCE.parent / name
             for name in (dom0_layout.REPORT_UNIT_NAME, dom0_layout.REPORT_TIMER_NAME)]  # fmt: skip
    for unit in units:
        shutil.copy(unit, tmp_path)
    result = subprocess.run([systemd_analyze, "verify", *(str(tmp_path / u.name) for u in units)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and "xcp-provision-report" not in result.stderr, result.stderr


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with rack_inventory(tmp_path, profiles=("rack",)) as db:
        yield db


@pytest.fixture
def server(tmp_path: Path, database: Database) -> Iterator[str]:
    with serving(tmp_path, database) as url:
        yield url


def _xen_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "xen-bin"
    bin_dir.mkdir()
    xl = bin_dir / "xl"
    xl.write_text(f"#!/bin/sh\n[ \"$1\" = info ] || exit 1\ncat <<'EOF'\n{XL_INFO}EOF\n")
    xl.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def _agent(root: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/python3", str(AGENT_SOURCE), "--root", str(root), "--backoff-base", "0.05",
         "--max-attempts", "2", *args],
        capture_output=True, text=True, timeout=120, env={"PATH": path}, check=False,
    )  # fmt: skip


def _health(server_db: Database, host_id: int) -> HostHealth | None:
    with server_db.scope(write=False) as session:
        row = session.get(HostHealth, host_id)
        if row is not None:
            session.expunge(row)
        return row


def test_registration_arms_reports_and_a_degraded_mirror_reaches_the_server(
    tmp_path: Path, server: str, database: Database
) -> None:
    path = _xen_path(tmp_path)
    root = tmp_path / "node1"
    install_overlay(root, "debian12-xcp.test")
    token = installed_host(database, 1, pool="rack1", profile="rack")
    dom0_layout.inside(root, dom0_layout.FIRSTBOOT_CONFIG).write_text(json.dumps(
        {"server_url": server, "token": token, "pool": "rack1", "hostname": "node1",
         "mac": mac_of(1)}))  # fmt: skip
    sys_block = root / agent.SYS_BLOCK
    array = mirror(sys_block)

    first = _agent(root, path)
    assert first.returncode == 0, first.stderr
    report_config = dom0_layout.inside(root, dom0_layout.REPORT_CONFIG)
    assert stat.S_IMODE(report_config.stat().st_mode) == 0o600
    kept = json.loads(report_config.read_text())
    assert kept["server_url"] == server and kept["token"].startswith("xph_")
    assert "reported: software RAID clean: md127 clean (2 of 2)" in first.stderr
    with database.scope(write=False) as session:
        host_id = get_host(session, mac_of(1)).id
    assert _health(database, host_id).raid_state == "clean"

    (array / "degraded").write_text("1\n")  # a disk gone, as the kernel shows it after boot
    second = _agent(root, path, "--report")
    assert second.returncode == 0, second.stderr
    assert "software RAID degraded: md127 degraded (1 of 2)" in second.stderr
    health = _health(database, host_id)
    assert (health.raid_state, health.raid[0]["members"]) == ("degraded", 1)

    with database.scope() as session:  # the operator reinstalls it: the old dom0's token dies
        reinstall_host(session, get_host(session, host_id))
    refused = _agent(root, path, "--report")
    assert refused.returncode == agent.EXIT_REFUSED, refused.stderr
    assert "HTTP 401" in refused.stderr
    assert _health(database, host_id) is None


def test_report_without_a_token_or_server_says_so(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install_overlay(root, "debian12-test")
    missing = _agent(root, os.environ["PATH"], "--report")
    assert missing.returncode == agent.EXIT_CONFIG
    assert "report.json does not exist" in missing.stderr
    agent.write_report_config(root, "http://127.0.0.1:9", "xph_x")  # port 9: discard, closed
    unreachable = _agent(root, os.environ["PATH"], "--report")
    assert unreachable.returncode == agent.EXIT_GAVE_UP, unreachable.stderr
