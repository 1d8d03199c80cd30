"""The dom0 download cut on the wire, twice and then six times: the installer's laydown resumes
with Range each time and lays down exactly the published tree.

Real sockets all the way: the release server on loopback, a real TCP proxy in front of it that
closes the first connections carrying the rootfs after some bytes, and the installer's own
laydown (fetch, zstd, sha256, tar) writing into a directory. Six cuts are more than the resume
budget allows in a row; each brought bytes, so none of them is a reason to give up.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard
from support import small_release
from support.release_server import ReleaseServer
from support.tcp_proxy import Cut, FaultyProxy

from common.release import ArtefactKind
from installer import fetch
from installer.laydown import lay_down

CUT_AFTER = 400_000  # bytes of each broken answer (headers included) that get through


def _published_files(release: Path, path: str) -> dict[str, str]:
    """Every regular file of the published rootfs and its sha256."""
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO((release / path).read_bytes()))
    files = {}
    with tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member).read()
                files[member.name.removeprefix("./")] = hashlib.sha256(data).hexdigest()
    return files


@pytest.mark.parametrize("cuts", [2, 6])
def test_a_cut_rootfs_resumes_and_lays_down_the_published_tree(tmp_path: Path, cuts: int) -> None:
    release = tmp_path / "release"
    small_release.build(release, extra_bytes=3 << 20)
    root = tmp_path / "root"
    root.mkdir()
    with ReleaseServer(release) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        manifest = fetch.fetch_manifest(srv.url)
        rootfs = manifest.artefact(ArtefactKind.DOM0_ROOTFS)
        assert rootfs.size > (cuts + 1) * CUT_AFTER
        cut = Cut(rootfs.path.encode(), cuts, CUT_AFTER)
        with FaultyProxy(("127.0.0.1", port), cut) as proxy:
            lay_down(proxy.url, manifest, root)
            assert proxy.cuts == cuts
        ranges = [g.range for g in srv.gets if g.path == f"/{rootfs.path}"]
    # The whole file asked for, then once per cut from where the last connection broke.
    assert len(ranges) == cuts + 1 and ranges[0] is None, ranges
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    for n, start in enumerate(starts, start=1):
        assert (n - 1) * CUT_AFTER < start < n * CUT_AFTER, starts
    published = _published_files(release, rootfs.path)
    laid = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in published}
    assert laid == published
    assert (root / "boot" / "xen.gz").is_symlink()
