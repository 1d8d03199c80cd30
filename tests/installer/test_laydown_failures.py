"""The laydown failing under the installer's feet: tar killed, the target full. Each ends at once
with a sentence that names what failed, not with resumed downloads that never finish."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

from common.release import Artefact, ArtefactKind
from installer import fetch, laydown


def _tar_children() -> list[int]:
    """This process's child ``tar`` processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and comm == "tar":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("when", ["first bytes", "last bytes"])
def test_tar_killed_is_a_tar_failure_at_once(tmp_path: Path, when: str) -> None:
    """Killed at the last bytes, tar may still have pieces queued for it: those fail after the
    download ended, and say the same."""
    release = tmp_path / "release"
    small_release.build(release, extra_bytes=8 << 20)
    root = tmp_path / "root"
    root.mkdir()
    killed: list[int] = []

    def kill_tar_once(art: Artefact, received: int) -> None:
        at = received == art.size if when == "last bytes" else True
        if art.kind is ArtefactKind.DOM0_ROOTFS and at and not killed:
            killed.extend(_tar_children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with ReleaseServer(release) as srv:
        manifest = fetch.fetch_manifest(srv.url)
        rootfs = manifest.artefact(ArtefactKind.DOM0_ROOTFS)
        start = time.monotonic()
        with pytest.raises(laydown.LaydownError) as err:
            laydown.lay_down(srv.url, manifest, root, kill_tar_once)
        took = time.monotonic() - start
        gets = [g for g in srv.gets if g.path == f"/{rootfs.path}"]
    assert len(killed) == 1
    assert str(err.value).startswith(
        f"tar failed (exit -9) extracting {rootfs.path} into {root}"
    )
    assert len(gets) == 1, "the download was resumed after tar died"
    assert took < 10


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 1 MiB tmpfs, unmounted whatever happens."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mountpoint], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=True)


def test_a_full_target_names_the_boot_file_and_leaves_no_part(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    """The dom0 tree fits; the 2 MiB kernel does not."""
    release = tmp_path / "release"
    small_release.build(release, kernel_bytes=2 << 20)
    with ReleaseServer(release) as srv:
        manifest = fetch.fetch_manifest(srv.url)
        kernel = manifest.artefact(ArtefactKind.DOM0_KERNEL)
        with pytest.raises(laydown.LaydownError) as err:
            laydown.lay_down(srv.url, manifest, small_tmpfs)
        gets = [g for g in srv.gets if g.path == f"/{kernel.path}"]
    boot = small_tmpfs / "boot"
    assert str(err.value) == (
        f"cannot write {boot / kernel.path}: No space left on device"
    )
    assert len(gets) == 1
    assert not [p.name for p in boot.iterdir() if p.name.endswith(".part")]
    assert (small_tmpfs / "etc/shadow").is_file()
