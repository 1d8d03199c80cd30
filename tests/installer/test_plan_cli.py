"""``xcp-install plan``: the plan as a table or JSON, for a disk image, writing nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.loopdisk import GIB, MIB, content_hash, sparse_image

from installer.block import loop
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
    result = CliRunner().invoke(
        main,
        ["plan", "--answerfile", answers_path, "--target-disk", str(image), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["boot_mode"] == booted_mode().value
    parts = plan["primary"]["partitions"]
    assert [p["number"] for p in parts] == [5, 2, 1, 3, 6]
    assert plan["primary"]["disk"]["size_bytes"] == 50 * GIB
    suffix = plan["label_suffix"]
    assert {p["role"]: p["label"] for p in parts} == {
        "logs": f"logs-{suffix}",
        "backup": None,
        "root": f"root-{suffix}",
        "boot": None,
        "swap": f"swap-{suffix}",
    }
    assert content_hash(image) == before
    attached = subprocess.run(
        ["losetup", "--associated", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert attached == ""


def test_table_plan_fits_80_columns(tmp_path: Path, answers_path: str):
    image = sparse_image(tmp_path / "d.img", 60 * GIB)
    result = CliRunner().invoke(
        main,
        ["plan", "--answerfile", answers_path, "--target-disk", str(image), "--boot-mode", "uefi"],
        catch_exceptions=False,
        terminal_width=80,
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any("BOOT-" in line and "ef00" in line and "vfat" in line for line in lines)
    assert any(line.split("│")[1].strip() == "5" for line in lines if "│" in line)


MIRROR = """<?xml version="1.0"?>
<installation>
  <raid device="md127"><disk>{0}</disk><disk>{1}</disk></raid>
  <primary-disk>md127</primary-disk>
  <source type="url">http://example.invalid/xcp/</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""


def _mirror_plan(tmp_path: Path, sizes: tuple[int, int], *options: str):
    """``xcp-install plan`` of a RAID1 answer file over two loop-attached images."""
    images = [sparse_image(tmp_path / f"member{i}.img", size) for i, size in enumerate(sizes)]
    before = [content_hash(image) for image in images]
    with loop.attached(images[0]) as first, loop.attached(images[1]) as second:
        path = tmp_path / "raid.xml"
        path.write_text(MIRROR.format(first, second))
        result = CliRunner().invoke(
            main,
            ["plan", "--answerfile", str(path), *options],
            catch_exceptions=False,
            terminal_width=80,
        )
    assert [content_hash(image) for image in images] == before
    return result, (first, second)


def test_json_plan_of_a_mirror_names_both_members_and_writes_nothing(tmp_path: Path):
    result, members = _mirror_plan(tmp_path, (50 * GIB, 50 * GIB), "--json", "--boot-mode", "bios")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    raid = plan["raid"]
    assert (raid["device"], raid["level"], raid["metadata"]) == ("/dev/md127", "raid1", "1.0")
    assert [m["path"] for m in raid["members"]] == list(members)
    assert [m["size_bytes"] for m in raid["members"]] == [50 * GIB, 50 * GIB]
    assert raid["size_bytes"] == 50 * GIB - MIB
    assert plan["primary"]["disk"]["path"] == "/dev/md127"
    assert plan["primary"]["disk"]["size_bytes"] == raid["size_bytes"]
    assert [p["number"] for p in plan["primary"]["partitions"]] == [5, 2, 1, 4, 6, 3]


def test_a_mirror_of_unequal_disks_is_refused_with_exit_2(tmp_path: Path):
    result, (_, second) = _mirror_plan(tmp_path, (50 * GIB, 60 * GIB))
    assert result.exit_code == 2
    assert f"refused: RAID members of /dev/md127 differ in size by more than 1%: {second}" in (
        " ".join(result.stderr.split())
    )
