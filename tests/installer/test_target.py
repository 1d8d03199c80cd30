"""``--target-disk``: which paths become a loop device, for every command that takes it.

``xcp-install plan``/``partition`` and the backends used to decide this with two different rules;
a path that exists but is neither a block device nor a regular file (a directory, ``/dev/null``)
was handed to ``losetup`` by one (a failure, exit 1) and to discovery by the other (a refusal,
exit 2, nothing written). The refusal is the rule now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from common import runner
from installer.cli.main import main
from installer.target import disk_path, is_image_file, target_device

ANSWERFILE = """<?xml version="1.0"?>
<installation>
  <primary-disk>sda</primary-disk>
  <source type="url">http://example.invalid/xcp/</source>
  <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""


@pytest.mark.parametrize("path", ["/dev/null", "/tmp", None, "/nonexistent/disk.img"])
def test_only_a_regular_file_is_attached(path: str | None) -> None:
    seen: list[list[str]] = []
    with runner.guarded(seen.append), target_device(path) as device:
        assert device == path
    assert seen == []
    assert not is_image_file(path)


def test_a_regular_file_is_an_image(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    link = tmp_path / "link.img"
    link.symlink_to(image)
    assert is_image_file(str(image))
    assert is_image_file(str(link))


@pytest.mark.parametrize(("name", "path"), [
    ("sda", "/dev/sda"),
    ("disk/by-id/wwn-0x5000", "/dev/disk/by-id/wwn-0x5000"),
    ("/dev/nvme0n1", "/dev/nvme0n1"),
])
def test_xcp_ng_disk_names(name: str, path: str) -> None:
    assert disk_path(name) == path


@pytest.mark.parametrize("command", ["plan", "partition"])
def test_a_directory_as_target_disk_is_refused(tmp_path: Path, command: str) -> None:
    answers = tmp_path / "answerfile.xml"
    answers.write_text(ANSWERFILE)
    result = CliRunner().invoke(main, [command, "--answerfile", str(answers),
                                       "--target-disk", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "not a block device" in result.output
