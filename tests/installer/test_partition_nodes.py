"""Partition nodes where nobody makes them: a static /dev (no devtmpfs, no udev).

Runs in a private mount namespace with a tmpfs over /dev, so the host's /dev is untouched; the
installer's fallback must mknod the nodes from sysfs and remove them when the partitions go.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.loopdisk import GIB, loop_image

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and namespaces need root"),
]

IN_NAMESPACE = """
import os, stat, subprocess, sys
device = sys.argv[1]
rdev = os.stat(device).st_rdev
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/dev"], check=True)
os.mknod(device, 0o600 | stat.S_IFBLK, rdev)
from installer.block import nodes
made = nodes.add_partitions(device, [1, 2])
for number, path in made.items():
    st = os.stat(path)
    name = os.path.basename(path)
    assert stat.S_ISBLK(st.st_mode), path
    numbers = open(f"/sys/class/block/{name}/dev").read().strip()
    assert numbers == f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", (path, numbers)
nodes.forget_partitions(device)
print(sorted(os.listdir("/dev")))
"""


def test_nodes_are_made_and_removed_on_a_static_dev(tmp_path: Path):
    with loop_image(tmp_path / "d.img", 1 * GIB) as device:
        subprocess.run(["sgdisk", "-n1:2048:+10M", "-n2:0:+10M", device], check=True,
                       capture_output=True)
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
             IN_NAMESPACE, device],
            capture_output=True, text=True, check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"[{Path(device).name!r}]"
