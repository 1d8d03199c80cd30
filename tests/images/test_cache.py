"""The build cache: keyed by inputs, atomic, one builder per key, old entries pruned."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from images.cache import KEEP_PER_KIND, BuildCache, CacheError, package_versions, source_digest


def test_same_inputs_build_once_other_inputs_build_again(empty_cache: BuildCache) -> None:
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "artefact").write_text(str(len(calls)))

    entry, built = empty_cache.ensure("thing", {"packages": {"a": "1"}}, build)
    assert built
    assert (entry / "artefact").read_text() == "1"
    again, built_again = empty_cache.ensure("thing", {"packages": {"a": "1"}}, build)
    assert (again, built_again) == (entry, False)
    other, built_other = empty_cache.ensure("thing", {"packages": {"a": "2"}}, build)
    assert built_other
    assert other != entry
    assert len(calls) == 2
    assert empty_cache.latest("thing") == other


def test_failed_build_leaves_nothing_that_looks_complete(empty_cache: BuildCache) -> None:
    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("apt failed")

    with pytest.raises(RuntimeError, match="apt failed"):
        empty_cache.ensure("thing", {"k": 1}, broken)
    assert empty_cache.lookup("thing", {"k": 1}) is None
    assert empty_cache.latest("thing") is None
    assert [
        p.name for p in (empty_cache.root / "thing").iterdir() if not p.name.endswith(".lock")
    ] == []


def test_concurrent_builders_of_one_key_build_once(empty_cache: BuildCache) -> None:
    calls = []

    def slow_build(out: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        (out / "artefact").write_text("done")

    results: list[tuple[Path, bool]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(empty_cache.ensure("t", {"k": 1}, slow_build))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert sorted(built for _, built in results) == [False, False, True]
    assert len({entry for entry, _ in results}) == 1


def test_old_entries_are_pruned(empty_cache: BuildCache) -> None:
    entries = []
    for version in range(KEEP_PER_KIND + 2):
        entry, _ = empty_cache.ensure("thing", {"v": version}, lambda out: None)
        entries.append(entry)
        time.sleep(0.01)
    kept = [entry for entry in entries if entry.exists()]
    assert kept == entries[-KEEP_PER_KIND:]


def test_source_digest_follows_content_and_names(tmp_path: Path) -> None:
    tree = tmp_path / "pkg"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.py").write_text("one")
    (tree / "sub" / "b.sh").write_text("two")
    first = source_digest([tree])
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"noise")
    assert source_digest([tree]) == first
    (tree / "sub" / "b.sh").write_text("three")
    assert source_digest([tree]) != first


def test_package_versions_from_apt() -> None:
    versions = package_versions(["xen-hypervisor-4.17-amd64", "zstd"])
    assert set(versions) == {"xen-hypervisor-4.17-amd64", "zstd"}
    assert all(version[0].isdigit() for version in versions.values())
    with pytest.raises(CacheError, match="no candidate for no-such-package-xcp"):
        package_versions(["no-such-package-xcp"])
