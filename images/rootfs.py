"""A Debian root filesystem built from this machine's apt mirror: the base of both images.

debootstrap lays the minimal system; apt installs the rest inside a chroot with the security
suite enabled and services prevented from starting; the tree is then packed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from common.dom0_layout import inside
from common.runner import run
from images.aptsources import AptSources


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc and /sys inside the chroot for package scripts; always unmounted.

    /dev is not bind-mounted: debootstrap makes the few nodes apt needs, and a bind mount left
    behind by a failed unmount would let the clean-up delete the host's /dev.
    """
    mounted: list[Path] = []
    try:
        for fstype, target in (("proc", "proc"), ("sysfs", "sys")):
            path = root / target
            path.mkdir(exist_ok=True)
            run(["mount", "-t", fstype, fstype, path])
            mounted.append(path)
        yield
    finally:
        for path in reversed(mounted):
            run(["umount", path])


def chroot(root: Path, *argv: str, timeout: float = 1800) -> str:
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", "PATH": "/usr/sbin:/usr/bin"}
    return run(["chroot", root, *argv], env=env, timeout=timeout).stdout


def debootstrap(root: Path, suite: str, sources: AptSources) -> None:
    run(["debootstrap", "--variant=minbase", suite, root, sources.mirror], timeout=1800)


def apt_install(root: Path, suite: str, sources: AptSources, packages: tuple[str, ...]) -> None:
    """Install with apt inside the chroot, services kept from starting, lists dropped after."""
    inside(root, "/etc/apt/sources.list").write_text(sources.sources_list(suite))
    policy = inside(root, "/usr/sbin/policy-rc.d")
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages)
        chroot(root, "apt-get", "clean")
    finally:
        policy.unlink(missing_ok=True)
    for lists in inside(root, "/var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def pack_tar_zst(root: Path, out: Path) -> None:
    """tar.zst with numeric owners, xattrs (file capabilities) and ``./`` names."""
    run(
        [
            "tar", "--create", "--file", out, "--directory", root, "--numeric-owner",
            "--xattrs", "--xattrs-include=*", "--sort=name",
            "--use-compress-program=zstd -T0 -12", ".",
        ],
        timeout=1800,
    )  # fmt: skip
