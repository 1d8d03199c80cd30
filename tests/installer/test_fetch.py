"""Streamed download + zstd + sha256 in one pass, resumed with Range after a cut."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import zstandard
from support import small_release
from support.full_disk import FullDisk
from support.release_server import ReleaseServer

from common import release
from common.release import ArtefactKind
from installer import fetch


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release")
    small_release.build(out, extra_bytes=3 << 20)
    return out


def _rootfs_names(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return set(tar.getnames())


def test_manifest_and_rootfs_over_http(release_dir: Path) -> None:
    with ReleaseServer(release_dir) as srv:
        manifest = fetch.fetch_manifest(srv.url)
        art = manifest.artefact(ArtefactKind.DOM0_ROOTFS)
        out = bytearray()
        seen: list[int] = []
        got = fetch.fetch_artefact(srv.url, art, out.extend, decompress=True, progress=seen.append)
    assert got.bytes_in == art.size and got.resumes == 0
    assert got.bytes_out == len(out) > art.size // 2
    assert "etc/shadow" in _rootfs_names(bytes(out))
    assert seen[-1] == art.size and seen == sorted(seen)


def test_cut_download_resumes_with_range(release_dir: Path) -> None:
    with ReleaseServer(release_dir) as srv:
        art = fetch.fetch_manifest(srv.url).artefact(ArtefactKind.DOM0_ROOTFS)
        srv.cut_once(f"/{art.path}", art.size // 2)
        out = bytearray()
        got = fetch.fetch_artefact(srv.url, art, out.extend, decompress=True)
        gets = [g for g in srv.gets if g.path == f"/{art.path}"]
    assert got.resumes == 1
    assert [g.status for g in gets] == [200, 206]
    assert gets[1].range == f"bytes={art.size // 2}-"
    assert "var/lib/payload.bin" in _rootfs_names(bytes(out))


def test_corrupt_image_is_a_clear_checksum_error(release_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in release_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    art = fetch.fetch_manifest(str(bad)).artefact(ArtefactKind.HYPERVISOR)
    data = bytearray((bad / art.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / art.path).write_bytes(bytes(data))
    with ReleaseServer(bad) as srv, pytest.raises(fetch.ChecksumError) as err:
        fetch.fetch_artefact(srv.url, art, lambda _b: None)
    message = str(err.value)
    assert art.path in message and art.sha256 in message and "corrupt" in message


def test_corrupt_zstd_stream_is_a_checksum_error_not_a_crash(release_dir: Path, tmp_path: Path):
    art = fetch.fetch_manifest(str(release_dir)).artefact(ArtefactKind.DOM0_ROOTFS)
    bad = tmp_path / art.path
    data = bytearray((release_dir / art.path).read_bytes())
    data[10:4000] = bytes(3990)
    bad.write_bytes(bytes(data))
    with pytest.raises(fetch.ChecksumError):
        fetch.fetch_artefact(str(tmp_path), art, lambda _b: None, decompress=True)


def test_file_url_and_directory_sources(release_dir: Path) -> None:
    for base in (str(release_dir), f"file://{release_dir}"):
        art = fetch.fetch_manifest(base).artefact(ArtefactKind.DOM0_KERNEL)
        out = bytearray()
        fetch.fetch_artefact(base, art, out.extend)
        assert bytes(out) == (release_dir / art.path).read_bytes()


def test_missing_release_is_a_refusal(tmp_path: Path) -> None:
    with ReleaseServer(tmp_path) as srv, pytest.raises(fetch.ReleaseUnavailableError) as err:
        fetch.fetch_manifest(srv.url + "/nothing")
    assert "HTTP 404" in str(err.value) and err.value.exit_code == 2


def test_gives_up_after_the_resume_budget(release_dir: Path) -> None:
    with ReleaseServer(release_dir) as srv:
        art = fetch.fetch_manifest(srv.url).artefact(ArtefactKind.DOM0_ROOTFS)
        srv.cut_once(f"/{art.path}", 1000)
        with pytest.raises(fetch.FetchError, match="gave up after 0 resumes"):
            fetch.fetch_artefact(srv.url, art, lambda _b: None, retries=0)


def test_unsupported_scheme_is_a_refusal() -> None:
    with pytest.raises(fetch.ReleaseUnavailableError, match="nfs:// is not supported"):
        fetch.fetch_manifest("nfs://server/export/release")


@pytest.mark.parametrize("source", ["http", "directory"])
def test_a_failing_sink_is_not_a_cut_connection(release_dir: Path, source: str) -> None:
    """A full disk under the consumer ends the download at once, saying so: it is not resumed
    a chunk at a time as a network fault would be."""
    full = FullDisk()
    with ReleaseServer(release_dir) as srv:
        base = srv.url if source == "http" else str(release_dir)
        art = fetch.fetch_manifest(base).artefact(ArtefactKind.DOM0_ROOTFS)
        with pytest.raises(fetch.SinkError) as err:
            fetch.fetch_artefact(base, art, full, decompress=True)
        gets = [g for g in srv.gets if g.path == f"/{art.path}"]
    assert full.calls == 1
    assert len(gets) == (1 if source == "http" else 0)
    assert err.value.reason == "No space left on device"
    assert str(err.value) == (
        f"cannot write what {base}/{art.path} holds: No space left on device"
    )


def test_a_highly_compressed_image_reaches_the_sink_in_bounded_pieces(tmp_path: Path) -> None:
    """1 GiB of zeros is 32 KiB of zstd: decompressed at once it would be a 1 GiB string."""
    packed = zstandard.ZstdCompressor(level=3).compress(bytes(1 << 30))
    assert len(packed) < fetch.CHUNK
    (tmp_path / "zeros.zst").write_bytes(packed)
    art = release.describe(tmp_path, ArtefactKind.DOM0_ROOTFS, "zeros.zst")
    pieces: list[int] = []
    got = fetch.fetch_artefact(str(tmp_path), art, lambda b: pieces.append(len(b)),
                               decompress=True)  # fmt: skip
    assert got.bytes_out == sum(pieces) == 1 << 30
    assert max(pieces) <= fetch.CHUNK
