"""Xen from Debian's package through apt, for real (needs the apt mirror: CI has it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from common import release
from common.release import ArtefactKind
from images import xen
from images.cache import BuildCache, package_versions
from images.demo import build_demo_release
from xcp_provision.main import main


@pytest.mark.slow
def test_real_xen_from_debian_cached_and_used_by_the_demo(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    out = tmp_path / "releases" / "debian12"
    cli = CliRunner()
    args = ["images", "hypervisor", "--out", str(out), "--cache", str(cache_dir)]

    first = cli.invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "fetched: Debian xen-hypervisor-4.17-amd64" in first.output
    manifest = release.load(out)
    hypervisor = manifest.artefact(ArtefactKind.HYPERVISOR)
    assert hypervisor.version == package_versions([xen.XEN_PACKAGE])[xen.XEN_PACKAGE]
    assert hypervisor.size > 500_000
    xen.check_multiboot2(out / hypervisor.path)
    assert release.verify(out) == []

    second = cli.invoke(main, args, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "cached: " in second.output
    assert release.load(out).artefact(ArtefactKind.HYPERVISOR).sha256 == hypervisor.sha256

    demo = build_demo_release(tmp_path / "releases" / "demo", BuildCache(cache_dir))
    demo_xen = demo.artefact(ArtefactKind.HYPERVISOR)
    assert demo_xen.sha256 == hypervisor.sha256
    assert demo_xen.version == hypervisor.version
    assert "hypervisor" not in demo.notes["placeholders"]
