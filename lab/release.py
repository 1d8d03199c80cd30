"""The real release the lab boots: Xen from Debian, the debootstrap dom0, the installer image.

Built by the same ``xcp-provision images`` commands an operator runs, through their build cache,
so a second lab run with unchanged inputs only checks the cache and copies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from common import release
from common.errors import CommandError
from common.release import ArtefactKind, Manifest, ReleaseError
from common.runner import run
from lab.errors import LabError
from lab.server import cli_path

BUILDERS = ("hypervisor", "dom0", "installer")
# A cold build runs debootstrap twice (dom0 and installer) on a slow shared machine.
BUILD_TIMEOUT = 3600


def default_lab_home() -> Path:
    """Where the lab keeps its release between runs: next to the build cache."""
    cache = os.environ.get("XCP_PROVISION_CACHE") or "/var/cache/xcp-provision"
    return Path(cache) / "lab"


@contextlib.contextmanager
def held(release_dir: Path) -> Iterator[None]:
    """Hold the release directory against every other lab run on this machine, from building
    it to copying it out: a run from another tree rebuilds it when its images' inputs differ."""
    release_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(release_dir.parent / f".{release_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def snapshot(release_dir: Path, dest: Path) -> Path:
    """Copy the release (held, see :func:`held`) into ``dest``, which this run alone serves:
    hosts installed after another run rebuilt the shared release would otherwise get another
    dom0 than their pool's master."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(release_dir, dest)
    return dest


def prepare_release(
    out_dir: Path, log_path: Path, cache_dir: Path | None = None, timeout: float = BUILD_TIMEOUT
) -> tuple[Manifest, dict[str, float]]:
    """Build or reuse each part into ``out_dir``; returns the manifest and seconds per builder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with open(log_path, "a") as log:
        for builder in BUILDERS:
            argv = [cli_path(), "images", builder, "--out", str(out_dir)]
            if cache_dir is not None:
                argv += ["--cache", str(cache_dir)]
            started = time.monotonic()
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            try:
                result = run(argv, timeout=timeout)
            except CommandError as exc:
                log.write(f"{exc.stdout}{exc.stderr}\n")
                raise LabError(f"release ({builder})", str(exc)) from exc
            seconds[builder] = round(time.monotonic() - started, 1)
            log.write(f"{result.stdout}{result.stderr}({seconds[builder]} s)\n")
            log.flush()
    try:
        manifest = release.load(out_dir)
    except ReleaseError as exc:
        raise LabError("release", str(exc)) from exc
    missing = [kind.value for kind in ArtefactKind if not manifest.has(kind)]
    if missing:
        raise LabError("release", f"{out_dir} lacks {', '.join(missing)} after building")
    return manifest, seconds
