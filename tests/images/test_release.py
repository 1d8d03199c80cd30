"""The release manifest: round trip, merging builders' artefacts, listing and removing."""

from __future__ import annotations

from pathlib import Path

import pytest

from common import release
from common.release import Artefact, ArtefactKind, Manifest, ReleaseError


def _file(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def test_manifest_round_trip_keeps_every_field(tmp_path: Path) -> None:
    manifest = Manifest(
        name="r1",
        version="4.17.7",
        created="2026-01-02T03:04:05Z",
        artefacts=(
            Artefact(ArtefactKind.HYPERVISOR, "xen.gz", 12, "ab" * 32, "4.17.7"),
            Artefact(ArtefactKind.DOM0_ROOTFS, "dom0/rootfs.tar.zst", 34, "cd" * 32),
        ),
        notes={"suite": "bookworm", "build_seconds": "41.5"},
    )
    release.save(tmp_path, manifest)
    assert release.load(tmp_path) == manifest
    assert release.load(tmp_path).artefact(ArtefactKind.DOM0_ROOTFS).path == "dom0/rootfs.tar.zst"


def test_manifest_rejects_paths_leaving_the_release() -> None:
    text = Manifest("r", "1", "now", (Artefact(ArtefactKind.HYPERVISOR, "../x", 1, "0"),)).to_json()
    with pytest.raises(ReleaseError, match="leaves the release"):
        Manifest.from_json(text)


def test_add_artefacts_merges_builders_into_one_manifest(tmp_path: Path) -> None:
    rel = tmp_path / "debian12"
    _file(rel, "xen.gz", b"xen")
    release.add_artefacts(
        rel,
        [release.describe(rel, ArtefactKind.HYPERVISOR, "xen.gz", "4.17")],
        version="first",
        notes={"hypervisor": "from test"},
    )
    _file(rel, "rootfs.tar.zst", b"root")
    release.add_artefacts(
        rel,
        [release.describe(rel, ArtefactKind.DOM0_ROOTFS, "rootfs.tar.zst", "12")],
        version="second",
        notes={"dom0": "from test"},
    )
    _file(rel, "xen2.gz", b"newer xen")
    merged = release.add_artefacts(
        rel, [release.describe(rel, ArtefactKind.HYPERVISOR, "xen2.gz", "4.18")], version="third"
    )
    assert merged == release.load(rel)
    assert merged.name == "debian12"
    assert merged.version == "first"
    assert sorted(a.kind.value for a in merged.artefacts) == ["dom0-rootfs", "hypervisor"]
    assert merged.artefact(ArtefactKind.HYPERVISOR).path == "xen2.gz"
    assert merged.notes == {"hypervisor": "from test", "dom0": "from test"}
    assert release.verify(rel) == []


def test_verify_names_a_missing_file(tmp_path: Path) -> None:
    _file(tmp_path, "xen.gz", b"xen")
    release.add_artefacts(
        tmp_path, [release.describe(tmp_path, ArtefactKind.HYPERVISOR, "xen.gz")], version="1"
    )
    (tmp_path / "xen.gz").unlink()
    assert release.verify(tmp_path) == ["xen.gz: missing (hypervisor)"]


def test_list_and_remove(tmp_path: Path) -> None:
    for name in ("b", "a"):
        _file(tmp_path / name, "xen.gz", name.encode())
        release.add_artefacts(
            tmp_path / name,
            [release.describe(tmp_path / name, ArtefactKind.HYPERVISOR, "xen.gz")],
            version="1",
        )
    (tmp_path / "not-a-release").mkdir()
    assert [m.name for m in release.list_releases(tmp_path)] == ["a", "b"]
    release.remove(tmp_path, "a")
    assert not (tmp_path / "a").exists()
    assert [m.name for m in release.list_releases(tmp_path)] == ["b"]
    with pytest.raises(ReleaseError, match="no release 'not-a-release'"):
        release.remove(tmp_path, "not-a-release")
    with pytest.raises(ReleaseError, match="not a release name"):
        release.remove(tmp_path, "..")
    assert (tmp_path / "not-a-release").is_dir()


def test_list_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert release.list_releases(tmp_path / "nothing") == []


def test_default_releases_dir_follows_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(release.DATA_DIR_ENV, "/srv/xcp")
    assert release.default_releases_dir() == Path("/srv/xcp/releases")
    monkeypatch.delenv(release.DATA_DIR_ENV)
    assert release.default_releases_dir() == Path("data/releases")
