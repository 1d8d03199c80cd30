"""Release artefacts from a URL or a directory, downloaded, decompressed and verified in one pass.

An image is never staged in RAM or on a scratch disk: the bytes go from the socket through
sha256 and zstd straight into their consumer (tar, or a file on the target). A connection cut
midway resumes with an HTTP ``Range`` request from the byte where it stopped, so a flaky rack
network costs a reconnect, not a restart. The resume budget counts interrupted tries in a row,
a try that brought bytes starting the count again, and each waits longer (0.5 s doubling, at
most 10 s): a transfer cut every few hundred megabytes goes on, and so does one whose server is
restarted (``serve`` killed and started again is seconds away; the budget outlasts ~45 s).
The digest is checked when the last byte arrives; the caller must not make the disk bootable
before that.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from common.release import MANIFEST, Artefact, Manifest, ReleaseError
from installer.errors import FailedError, RefusedError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60
RETRIES = 8
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0

Sink = Callable[[bytes], object]
Progress = Callable[[int], None]


class FetchError(FailedError):
    """An artefact could not be downloaded even after resuming."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"cannot download {location}: {reason}")


class ChecksumError(FailedError):
    """Downloaded bytes differ from the release manifest: the image is corrupt or was swapped."""

    def __init__(self, artefact: Artefact, size: int, digest: str) -> None:
        self.artefact = artefact
        self.size = size
        self.digest = digest
        super().__init__(
            f"{artefact.path} ({artefact.kind.value}) is corrupt: got {size} bytes with sha256 "
            f"{digest}, the release manifest says {artefact.size} bytes with sha256 "
            f"{artefact.sha256}; fix or rebuild the release, then install again"
        )


class ReleaseUnavailableError(RefusedError):
    """The release's manifest cannot be read, so nothing was written."""


@dataclass(frozen=True)
class Fetched:
    artefact: Artefact
    bytes_in: int
    bytes_out: int
    resumes: int


def _join(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel


def _local_path(location: str) -> Path:
    parsed = urllib.parse.urlsplit(location)
    return Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else Path(location)


def fetch_manifest(base: str) -> Manifest:
    """The release manifest under ``base`` (http(s) URL, ``file://`` URL or directory)."""
    location = _join(base, MANIFEST)
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in ("http", "https", "file", ""):
        raise ReleaseUnavailableError(
            f"cannot read a release from {base}: {scheme}:// is not supported (http, https, "
            "file:// or a directory)"
        )
    try:
        if urllib.parse.urlsplit(location).scheme in ("http", "https"):
            text = _read_small(location).decode()
        else:
            text = _local_path(location).read_text()
        return Manifest.from_json(text, location)
    except urllib.error.HTTPError as exc:
        raise ReleaseUnavailableError(
            f"no release at {base}: {location} gave HTTP {exc.code}"
        ) from exc
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise ReleaseUnavailableError(f"no release at {base}: {location}: {reason}") from exc
    except ReleaseError as exc:
        raise ReleaseUnavailableError(str(exc)) from exc


def _read_small(url: str, retries: int = RETRIES) -> bytes:
    """A small file over HTTP, tried again (as a cut download is) while the server cannot be
    reached or answers 5xx: a server restarting is no reason to fail an install."""
    for attempt in range(1, retries + 2):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt > retries:
                raise
            reason: object = f"HTTP {exc.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if attempt > retries:
                raise
            reason = exc
        log.warning("reading %s failed (%s); trying again", url, reason)
        time.sleep(min(BACKOFF_START_S * 2 ** (attempt - 1), BACKOFF_MAX_S))
    raise AssertionError("unreachable")


class _Pipeline:
    """sha256 over the bytes as published, then (optionally) zstd, then the consumer."""

    def __init__(self, sink: Sink, decompress: bool) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.bytes_in = 0
        self.bytes_out = 0
        self._zstd = zstandard.ZstdDecompressor().decompressobj() if decompress else None

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.bytes_in += len(chunk)
        out = self._zstd.decompress(chunk) if self._zstd is not None else chunk
        if out:
            self.bytes_out += len(out)
            self.sink(out)


def fetch_artefact(
    base: str,
    artefact: Artefact,
    sink: Sink,
    *,
    decompress: bool = False,
    progress: Progress | None = None,
    retries: int = RETRIES,
) -> Fetched:
    """Stream one artefact into ``sink``; raises ``ChecksumError`` when it does not match."""
    location = _join(base, artefact.path)
    pipe = _Pipeline(sink, decompress)
    resumes = 0
    try:
        if urllib.parse.urlsplit(location).scheme in ("http", "https"):
            resumes = _http(location, artefact.size, pipe, progress, retries)
        else:
            with open(_local_path(location), "rb") as fh:
                _copy(fh, pipe, progress, artefact.size)
    except zstandard.ZstdError as exc:
        raise ChecksumError(artefact, pipe.bytes_in, pipe.digest.hexdigest()) from exc
    except OSError as exc:
        raise FetchError(location, exc.strerror or str(exc)) from exc
    digest = pipe.digest.hexdigest()
    if pipe.bytes_in != artefact.size or digest != artefact.sha256:
        raise ChecksumError(artefact, pipe.bytes_in, digest)
    return Fetched(artefact, pipe.bytes_in, pipe.bytes_out, resumes)


def _copy(fh: BinaryIO, pipe: _Pipeline, progress: Progress | None, limit: int) -> None:
    while chunk := fh.read(CHUNK):
        pipe.feed(chunk)
        if progress:
            progress(pipe.bytes_in)
        if pipe.bytes_in > limit:
            return


def _http(url: str, size: int, pipe: _Pipeline, progress: Progress | None, retries: int) -> int:
    """Download with resume; returns how many times the transfer resumed. ``retries`` bounds
    the interrupted tries in a row; one that brought bytes starts the count again."""
    resumes = 0
    in_a_row = 0
    while True:
        start = pipe.bytes_in
        request = urllib.request.Request(url)  # noqa: S310
        if start:
            request.add_header("Range", f"bytes={start}-")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:  # noqa: S310
                skip = start if start and resp.status != 206 else 0
                _read_response(resp, pipe, progress, skip, size)
            if pipe.bytes_in >= size:
                return resumes
            reason = f"connection closed after {pipe.bytes_in} of {size} bytes"
        except urllib.error.HTTPError as exc:
            raise FetchError(url, f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = f"{exc} after {pipe.bytes_in} of {size} bytes"
        in_a_row = 1 if pipe.bytes_in > start else in_a_row + 1
        if in_a_row > retries:
            raise FetchError(url, f"{reason}; gave up after {resumes} resumes")
        resumes += 1
        log.warning("download of %s interrupted (%s); resuming", url, reason)
        time.sleep(min(BACKOFF_START_S * 2 ** (in_a_row - 1), BACKOFF_MAX_S))


def _read_response(
    resp: http.client.HTTPResponse,
    pipe: _Pipeline,
    progress: Progress | None,
    skip: int,
    size: int,
) -> None:
    while True:
        chunk = resp.read1(CHUNK)
        if not chunk:
            return
        if skip:
            dropped = min(skip, len(chunk))
            chunk = chunk[dropped:]
            skip -= dropped
        if chunk:
            pipe.feed(chunk)
            if progress:
                progress(pipe.bytes_in)
        if pipe.bytes_in > size:
            return
