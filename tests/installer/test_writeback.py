"""What the install writes reaches the disk while it is still writing, not at its end."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from installer.block import loop, mkfs
from installer.mounts import mounted_tree
from installer.writeback import BackgroundWriteback
from tests.support.loopdisk import sparse_image

PAYLOAD = 32 << 20


def _bytes_written(device: str) -> int:
    """Bytes the block device was sent for writing since it appeared (sysfs ``stat``: the
    seventh field counts written 512-byte sectors)."""
    fields = Path(f"/sys/block/{Path(device).name}/stat").read_text().split()
    return int(fields[6]) * 512


def test_data_written_under_it_is_on_the_disk_within_a_second(tmp_path: Path) -> None:
    image = sparse_image(tmp_path / "disk.img", 256 << 20)
    with loop.attached(image) as device:
        mkfs.ext(device, "writeback")
        with mounted_tree() as mounts:
            # A journal commit every 60 s, as ext3 at rest would take 5 s to come to: only the
            # writeback asked for below may send the data within the second.
            root = mounts.mount(device, options="commit=60")
            before = _bytes_written(device)
            (root / "alone").write_bytes(os.urandom(PAYLOAD))
            time.sleep(1)
            assert _bytes_written(device) - before < PAYLOAD  # left in the page cache

            before = _bytes_written(device)
            with BackgroundWriteback(root):
                (root / "beside").write_bytes(os.urandom(PAYLOAD))
                time.sleep(1)
                assert _bytes_written(device) - before >= 2 * PAYLOAD  # both files now


def test_a_writeback_that_cannot_start_is_logged_and_the_block_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ran = False
    with (
        caplog.at_level(logging.WARNING, logger="installer.writeback"),
        BackgroundWriteback(tmp_path / "no-such-root"),
    ):
        ran = True
    assert ran
    assert "no background writeback" in caplog.text and "no-such-root" in caplog.text
