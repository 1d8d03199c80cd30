"""Releases over FTP from a real server on loopback: fetched, checked, resumed, and refused
clearly (naming the URL, never its password) when a file is missing, the login is refused or a
file does not match its manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import small_release
from support.ftp_server import PASSWORD, USER, FtpServer
from support.full_disk import FullDisk

from common.release import ArtefactKind
from installer import fetch


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("ftp")
    small_release.build(top / "release", extra_bytes=1 << 20)
    return top


def test_a_release_is_fetched_and_checked_over_ftp(served: Path) -> None:
    release_dir = served / "release"
    with FtpServer(served) as srv:
        base = f"{srv.url}/release"
        manifest = fetch.fetch_manifest(base)
        for art in manifest.artefacts:
            out = bytearray()
            got = fetch.fetch_artefact(base, art, out.extend)
            assert bytes(out) == (release_dir / art.path).read_bytes()
            assert (got.bytes_in, got.resumes) == (art.size, 0)
    assert manifest.has(ArtefactKind.DOM0_ROOTFS) and manifest.has(ArtefactKind.HYPERVISOR)


def test_a_named_user_logs_in_and_its_password_never_shows(served: Path) -> None:
    with FtpServer(served) as srv:
        manifest = fetch.fetch_manifest(f"{srv.url_as(USER, PASSWORD)}/release")
        with pytest.raises(fetch.ReleaseUnavailableError) as refused:
            fetch.fetch_manifest(f"{srv.url_as(USER, 'wrong-pass')}/release")
    assert manifest.name == "test"
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "refused the login as 'site'" in message and "530" in message
    assert f"ftp://site:***@{srv.url.removeprefix('ftp://')}/release" in message
    assert "wrong-pass" not in message


def test_a_missing_release_names_the_url(served: Path) -> None:
    with FtpServer(served) as srv, pytest.raises(fetch.ReleaseFileMissingError) as missing:
        fetch.fetch_manifest(f"{srv.url}/no-such-release")
    assert f"{srv.url}/no-such-release/manifest.json" in str(missing.value)
    assert "550" in str(missing.value)


def test_a_missing_artefact_names_the_url(served: Path, tmp_path: Path) -> None:
    shutil.copytree(served / "release", tmp_path / "release")
    manifest = fetch.fetch_manifest(str(tmp_path / "release"))
    kernel = manifest.artefact(ArtefactKind.DOM0_KERNEL)
    (tmp_path / "release" / kernel.path).unlink()
    with FtpServer(tmp_path) as srv, pytest.raises(fetch.FetchError) as failed:
        fetch.fetch_artefact(f"{srv.url}/release", kernel, lambda _b: None)
    assert f"{srv.url}/release/{kernel.path}" in str(failed.value)
    assert "550" in str(failed.value) and failed.value.exit_code == 1


def test_a_changed_artefact_is_a_checksum_error_naming_the_url(
    served: Path, tmp_path: Path
) -> None:
    shutil.copytree(served / "release", tmp_path / "release")
    manifest = fetch.fetch_manifest(str(tmp_path / "release"))
    xen = manifest.artefact(ArtefactKind.HYPERVISOR)
    data = bytearray((tmp_path / "release" / xen.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "release" / xen.path).write_bytes(bytes(data))
    with FtpServer(tmp_path) as srv, pytest.raises(fetch.ChecksumError) as corrupt:
        fetch.fetch_artefact(f"{srv.url}/release", xen, lambda _b: None)
    message = str(corrupt.value)
    assert f"{srv.url}/release/{xen.path}" in message
    assert xen.sha256 in message and "corrupt" in message


def test_a_transfer_that_stops_short_resumes_with_rest(served: Path) -> None:
    with FtpServer(served) as srv:
        base = f"{srv.url}/release"
        art = fetch.fetch_manifest(base).artefact(ArtefactKind.DOM0_ROOTFS)
        half = art.size // 2
        srv.end_early_once(art.path, half)
        out = bytearray()
        got = fetch.fetch_artefact(base, art, out.extend, decompress=True)
        rests = srv.rests
    assert got.resumes == 1 and got.bytes_in == art.size
    assert rests == [half]
    assert out == fetch.zstandard.ZstdDecompressor().decompressobj().decompress(
        (served / "release" / art.path).read_bytes()
    )


def test_a_failing_sink_ends_the_transfer_and_shows_no_password(served: Path) -> None:
    """A full target is not a cut transfer: no resume, and the URL in the sentence is masked."""
    full = FullDisk()
    with FtpServer(served) as srv:
        base = f"{srv.url_as(USER, PASSWORD)}/release"
        art = fetch.fetch_manifest(base).artefact(ArtefactKind.DOM0_ROOTFS)
        with pytest.raises(fetch.SinkError) as err:
            fetch.fetch_artefact(base, art, full, decompress=True)
    assert full.calls == 1
    assert str(err.value) == (
        f"cannot write what ftp://site:***@{srv.url.removeprefix('ftp://')}/release/"
        f"{art.path} holds: No space left on device"
    )
