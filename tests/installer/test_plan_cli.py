"""``xcp-install plan``: the plan as a table or JSON, for a disk image, writing nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.loopdisk import GIB, content_hash, sparse_image

from installer.bootmode import booted_mode
from installer.cli.main import main

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
]

ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <primary-disk guest-storage="false">sda</primary-disk>
  <source type="url">http://example.invalid/xcp/</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""


@pytest.fixture
def answers_path(tmp_path: Path) -> str:
    path = tmp_path / "answerfile.xml"
    path.write_text(ANSWERFILE)
    return str(path)


def test_json_plan_of_an_image_writes_nothing(tmp_path: Path, answers_path: str):
    image = sparse_image(tmp_path / "d.img", 50 * GIB)
    before = content_hash(image)
    result = CliRunner().invoke(main, ["plan", "--answerfile", answers_path, "--target-disk",
                                       str(image), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["boot_mode"] == booted_mode().value
    parts = plan["primary"]["partitions"]
    assert [p["number"] for p in parts] == [5, 2, 1, 3, 6]
    assert plan["primary"]["disk"]["size_bytes"] == 50 * GIB
    suffix = plan["label_suffix"]
    assert {p["role"]: p["label"] for p in parts} == {
        "logs": f"logs-{suffix}", "backup": None, "root": f"root-{suffix}", "boot": None,
        "swap": f"swap-{suffix}"}
    assert content_hash(image) == before
    attached = subprocess.run(["losetup", "--associated", str(image)], capture_output=True,
                              text=True, check=True).stdout
    assert attached == ""


def test_table_plan_fits_80_columns(tmp_path: Path, answers_path: str):
    image = sparse_image(tmp_path / "d.img", 60 * GIB)
    result = CliRunner().invoke(main, ["plan", "--answerfile", answers_path, "--target-disk",
                                       str(image), "--boot-mode", "uefi"],
                                catch_exceptions=False, terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any("BOOT-" in line and "ef00" in line and "vfat" in line for line in lines)
    assert any(line.split("│")[1].strip() == "5" for line in lines if "│" in line)
