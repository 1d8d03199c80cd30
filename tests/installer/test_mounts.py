"""The target's filesystems: filled without per-commit cache flushes, flushed once when they come
off, and always unmounted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from installer.block import loop, mkfs
from installer.mounts import BULK_WRITE, flush_write_cache, mounted_tree
from tests.support.loopdisk import sparse_image


def _options(target: Path) -> list[str]:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(target):
            return fields[3].split(",")
    return []


def test_a_bulk_mount_sends_no_barriers_and_every_mount_comes_off(tmp_path: Path) -> None:
    image = sparse_image(tmp_path / "disk.img", 256 << 20)
    with loop.attached(image) as device:
        mkfs.ext(device, "root-test")
        with mounted_tree() as mounts:
            root = mounts.mount(device, options=BULK_WRITE)
            assert "nobarrier" in _options(root)
            (root / "payload").write_bytes(b"x" * 65536)
        assert _options(root) == []
        with mounted_tree() as mounts:  # what was written is there on the next mount
            root = mounts.mount(device, options="ro")
            assert "nobarrier" not in _options(root)
            assert (root / "payload").stat().st_size == 65536


def test_a_flush_that_cannot_be_made_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="installer.mounts"):
        flush_write_cache(str(tmp_path / "no-such-device"))
    assert "cannot open" in caplog.text and "no-such-device" in caplog.text
