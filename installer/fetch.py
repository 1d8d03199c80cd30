"""Release artefacts from a URL or a directory, downloaded, decompressed and verified in one pass.

Each scheme has one reader: http(s) here, ftp in ``installer.fetch_ftp`` (resuming with ``REST``
as HTTP does with ``Range``), and ``file://`` or a plain directory (a mounted medium included).

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
from installer import fetch_ftp, tls
from installer.errors import FailedError, RefusedError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60
RETRIES = 8
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
MAX_SMALL_FILE = 1 << 20  # a manifest or a signature; anything larger is not one

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

    def __init__(self, artefact: Artefact, size: int, digest: str, location: str = "") -> None:
        self.artefact = artefact
        self.size = size
        self.digest = digest
        self.location = location or artefact.path
        super().__init__(
            f"{self.location} ({artefact.kind.value}) is corrupt: got {size} bytes with sha256 "
            f"{digest}, the release manifest says {artefact.size} bytes with sha256 "
            f"{artefact.sha256}; fix or rebuild the release, then install again"
        )


class SinkError(FailedError):
    """What the bytes were written to failed: a full disk, or ``tar`` gone. Not the network's
    fault, so the download is not resumed (it once was, a chunk a try, as if the connection had
    been cut). The caller knows what the bytes were written to and words the error."""

    def __init__(self, location: str, cause: OSError) -> None:
        self.location = location
        self.reason = cause.strerror or str(cause)
        super().__init__(f"cannot write what {location} holds: {self.reason}")


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


def _scheme(location: str) -> str:
    """How a location is read: ``http`` (also https), ``ftp``, or ``file`` (also a directory)."""
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme in ("ftp", "file"):
        return scheme
    if scheme == "":
        return "file"
    raise ReleaseUnavailableError(
        f"cannot read a release from {location}: {scheme}:// is not supported (http, https, "
        "ftp, file:// or a directory)"
    )


class ReleaseFileMissingError(ReleaseUnavailableError):
    """The server (or directory) answered that the file is not there."""


def read_release_file(base: str, name: str, limit: int = MAX_SMALL_FILE) -> bytes:
    """A small file of the release under ``base`` (the manifest, its signature), whole."""
    location = _join(base, name)
    where = shown(location)
    try:
        match _scheme(base):
            case "http":
                data = _read_small(location)
            case "ftp":
                data = fetch_ftp.read(location, limit)
            case _:
                with open(_local_path(location), "rb") as fh:
                    data = fh.read(limit + 1)
    except urllib.error.HTTPError as exc:
        kind = ReleaseFileMissingError if exc.code in (404, 410) else ReleaseUnavailableError
        raise kind(f"no release at {base}: {location} gave HTTP {exc.code}") from exc
    except fetch_ftp.FtpError as exc:
        kind = ReleaseFileMissingError if exc.missing else ReleaseUnavailableError
        raise kind(f"no release at {shown(base)}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ReleaseFileMissingError(f"no release at {base}: {location}: no such file") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        refused = tls.refused_certificate(exc)
        reason = (
            tls.explain(refused)
            if refused
            else getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        )
        raise ReleaseUnavailableError(f"no release at {shown(base)}: {where}: {reason}") from exc
    if len(data) > limit:
        raise ReleaseUnavailableError(f"{where} is larger than {limit} bytes: not a release file")
    return data


def shown(location: str) -> str:
    """``location`` fit for a message: an FTP password masked."""
    if urllib.parse.urlsplit(location).scheme.lower() == "ftp":
        try:
            return fetch_ftp.FtpUrl.parse(location).shown
        except fetch_ftp.FtpError:
            return location
    return location


def parse_manifest(data: bytes, base: str) -> Manifest:
    """The manifest in ``data`` (read from under ``base``), or a refusal saying what is wrong."""
    location = _join(base, MANIFEST)
    try:
        return Manifest.from_json(data.decode(), shown(location))
    except UnicodeDecodeError as exc:
        raise ReleaseUnavailableError(f"{shown(location)} is not UTF-8 text: {exc}") from exc
    except ReleaseError as exc:
        raise ReleaseUnavailableError(str(exc)) from exc


def fetch_manifest(base: str) -> Manifest:
    """The release manifest under ``base`` (http(s), ftp or ``file://`` URL, or directory)."""
    return parse_manifest(read_release_file(base, MANIFEST), base)


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
            if attempt > retries or tls.refused_certificate(exc):
                raise
            reason = exc
        log.warning("reading %s failed (%s); trying again", url, reason)
        time.sleep(min(BACKOFF_START_S * 2 ** (attempt - 1), BACKOFF_MAX_S))
    raise AssertionError("unreachable")


class _Pipeline:
    """sha256 over the bytes as published, then (optionally) zstd, then the consumer.

    zstd writes into the consumer in pieces of at most ``CHUNK``: a whole decompressed chunk
    at once could be gigabytes (128 KiB of zstd made 4 GiB of zeros in one call), in an
    installer that runs from RAM, before the checksum could say the image is wrong.
    """

    def __init__(self, sink: Sink, decompress: bool, location: str) -> None:
        self.sink = sink
        self.location = location
        self.digest = hashlib.sha256()
        self.bytes_in = 0
        self.bytes_out = 0
        self._zstd = (
            zstandard.ZstdDecompressor().stream_writer(self, write_size=CHUNK, closefd=False)
            if decompress
            else None
        )

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.bytes_in += len(chunk)
        if self._zstd is not None:
            self._zstd.write(chunk)
        else:
            self.write(chunk)

    def write(self, out: bytes) -> None:
        """The consumer's side, called by zstd for each decompressed piece."""
        self.bytes_out += len(out)
        try:
            self.sink(out)
        except OSError as exc:
            raise SinkError(shown(self.location), exc) from exc


def fetch_artefact(
    base: str,
    artefact: Artefact,
    sink: Sink,
    *,
    decompress: bool = False,
    progress: Progress | None = None,
    retries: int = RETRIES,
) -> Fetched:
    """Stream one artefact into ``sink``; raises ``ChecksumError`` when it does not match, and
    ``SinkError`` when ``sink`` raises ``OSError``."""
    location = _join(base, artefact.path)
    pipe = _Pipeline(sink, decompress, location)
    resumes = 0
    try:
        match _scheme(base):
            case "http":
                resumes = _http(location, artefact.size, pipe, progress, retries)
            case "ftp":
                resumes = fetch_ftp.stream(
                    location,
                    artefact.size,
                    pipe,
                    progress=progress,
                    retries=retries,
                    pause=_pause,
                )
            case _:
                with open(_local_path(location), "rb") as fh:
                    _copy(fh, pipe, progress, artefact.size)
    except zstandard.ZstdError as exc:
        raise ChecksumError(
            artefact, pipe.bytes_in, pipe.digest.hexdigest(), shown(location)
        ) from exc
    except fetch_ftp.FtpError as exc:
        raise FetchError(exc.location, exc.reason) from exc
    except OSError as exc:
        raise FetchError(location, exc.strerror or str(exc)) from exc
    digest = pipe.digest.hexdigest()
    if pipe.bytes_in != artefact.size or digest != artefact.sha256:
        raise ChecksumError(artefact, pipe.bytes_in, digest, shown(location))
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
            if refused := tls.refused_certificate(exc):
                raise FetchError(url, tls.explain(refused)) from exc
            reason = f"{exc} after {pipe.bytes_in} of {size} bytes"
        in_a_row = 1 if pipe.bytes_in > start else in_a_row + 1
        if in_a_row > retries:
            raise FetchError(url, f"{reason}; gave up after {resumes} resumes")
        resumes += 1
        log.warning("download of %s interrupted (%s); resuming", url, reason)
        _pause(in_a_row)


def _pause(in_a_row: int) -> None:
    """Before the n-th interrupted try in a row: 0.5 s doubling, at most 10 s."""
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
