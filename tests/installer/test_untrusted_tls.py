"""Servers whose TLS certificate the installer does not trust (self-signed, on loopback): the
release and the progress server are refused at once, saying so, instead of being asked again as
if they were restarting (45 s for a release, up to 15 minutes for an install's last report)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release
from support.https_server import HttpsServer

from common.release import ArtefactKind
from installer import fetch
from installer.progress import HttpReporter, Progress, Step

REFUSED = ("the server's TLS certificate is not trusted (self-signed certificate); give the "
           "server a certificate from a CA the installer trusts")  # fmt: skip


@pytest.fixture
def https_release(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, release directory) of a release served over untrusted HTTPS."""
    release = tmp_path / "release"
    small_release.build(release)
    with HttpsServer(release, tmp_path) as url:
        yield url, release


def test_the_release_is_refused_at_once(https_release) -> None:
    base, _release = https_release
    start = time.monotonic()
    with pytest.raises(fetch.ReleaseUnavailableError) as err:
        fetch.fetch_manifest(base)
    assert time.monotonic() - start < 5
    assert str(err.value) == f"no release at {base}: {base}/manifest.json: {REFUSED}"


def test_a_download_stops_at_once(https_release) -> None:
    base, release = https_release
    art = fetch.fetch_manifest(str(release)).artefact(ArtefactKind.DOM0_ROOTFS)
    start = time.monotonic()
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_artefact(base, art, lambda _b: None, decompress=True)
    assert time.monotonic() - start < 5
    assert str(err.value) == f"cannot download {base}/{art.path}: {REFUSED}"


def test_progress_reports_give_up_at_once_and_the_install_goes_on(
    https_release, caplog: pytest.LogCaptureFixture
) -> None:
    base, _release = https_release
    progress = Progress([Step("laydown", 1)], [HttpReporter(base, "token", min_interval=0)])
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="installer.progress"):
        progress.start("laydown")
        progress.done()
    assert time.monotonic() - start < 5
    warnings = [r.getMessage() for r in caplog.records]
    assert any(REFUSED in w and "/installs/done" in w for w in warnings), warnings
