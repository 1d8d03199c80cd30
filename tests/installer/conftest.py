"""Fixtures of the installer tests: the installer boot image, and scripts run inside it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.installer_vm import VmResult, run_in_installer_vm

from images.bootimage import build
from images.cache import BuildCache, default_cache_dir


@pytest.fixture(scope="session")
def installer_image() -> build.InstallerImage:
    """The installer boot image through the build cache: built when its inputs changed (about a
    minute), else taken as it is."""
    if os.geteuid() != 0:
        pytest.skip("building the installer image needs root (debootstrap, chroot)")
    image, _built = build.build_installer(BuildCache(default_cache_dir()))
    return image


@pytest.fixture
def installer_vm(installer_image: build.InstallerImage) -> Callable[..., VmResult]:
    """``installer_vm(disks, script, timeout=..., files=...)``: the script's status and output
    from inside the installer image, booted under QEMU with ``disks`` attached."""

    def run_script(disks: Sequence[Path], script: str, **options: Any) -> VmResult:
        return run_in_installer_vm(installer_image, disks, script, **options)

    return run_script
