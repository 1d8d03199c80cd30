"""Release files over FTP (``ftp://[user[:password]@]host[:port]/path``), as XCP-ng reads them.

The URL's path is relative to the login directory, as curl and RFC 1738 read it (``%2F`` at
its start makes it absolute); with no user in the URL the login is anonymous. A transfer that
stops short (a cut connection, a server restarted) resumes with ``REST`` from the byte where it
stopped, under the same budget as an HTTP download: interrupted tries in a row, each waiting
longer. FTP's own answers decide what is worth another try: a 4xx reply is temporary, a 5xx one
(no such file, login refused) is final. The password never appears in a message or a log line.
"""

from __future__ import annotations

import ftplib
import logging
import urllib.parse
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

TIMEOUT_S = 60
CHUNK = 1 << 20
LOGIN_REFUSED = "530"
UNAVAILABLE = "550"


class Pipe(Protocol):
    """Where the bytes go: counted as they arrive (the resume offset), then consumed."""

    bytes_in: int

    def feed(self, chunk: bytes) -> None: ...


class FtpError(Exception):
    """An FTP transfer that failed; ``missing`` when the server says the file is not there."""

    def __init__(self, location: str, reason: str, *, missing: bool = False) -> None:
        self.location = location
        self.reason = reason
        self.missing = missing
        super().__init__(f"{location}: {reason}")


@dataclass(frozen=True)
class FtpUrl:
    host: str
    port: int
    user: str
    password: str
    path: str
    shown: str  # the URL with its password masked, for messages

    @classmethod
    def parse(cls, url: str) -> FtpUrl:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ftp" or not parts.hostname:
            raise FtpError(url, "not an ftp://host/path URL")
        user = urllib.parse.unquote(parts.username or "anonymous")
        password = urllib.parse.unquote(
            parts.password or ("anonymous@" if not parts.username else "")
        )
        shown = url
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            shown = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        path = urllib.parse.unquote(parts.path.removeprefix("/"))
        return cls(parts.hostname, parts.port or ftplib.FTP_PORT, user, password, path, shown)


class _TooLongError(Exception):
    """Raised from the data callback to stop a transfer that ran past its expected size."""


def _connect(url: FtpUrl) -> ftplib.FTP:
    # Plain FTP, as XCP-ng's answer files use it: what arrives is trusted only once it matches
    # the manifest's sha256 (and the manifest its signature, when one is asked for).
    ftp = ftplib.FTP(timeout=TIMEOUT_S)  # noqa: S321
    try:
        ftp.connect(url.host, url.port)
        ftp.login(url.user, url.password)
    except BaseException:
        ftp.close()
        raise
    return ftp


def _final(url: FtpUrl, exc: ftplib.error_perm) -> FtpError:
    reply = str(exc).strip()
    if reply.startswith(LOGIN_REFUSED):
        return FtpError(
            url.shown,
            f"the server refused the login as {url.user!r} ({reply}); "
            "put the right user:password in the URL",
        )
    missing = reply.startswith(UNAVAILABLE)
    return FtpError(url.shown, f"the server answered {reply}", missing=missing)


def read(location: str, limit: int) -> bytes:
    """A small file (a manifest, a signature), at most ``limit`` bytes of it."""
    url = FtpUrl.parse(location)
    data = bytearray()

    def keep(chunk: bytes) -> None:
        data.extend(chunk)
        if len(data) > limit:
            raise _TooLongError

    try:
        with closing(_connect(url)) as ftp:
            ftp.retrbinary(f"RETR {url.path}", keep)
    except _TooLongError as exc:
        raise FtpError(url.shown, f"larger than {limit} bytes") from exc
    except ftplib.error_perm as exc:
        raise _final(url, exc) from exc
    except (ftplib.Error, OSError, EOFError) as exc:
        raise FtpError(url.shown, str(exc) or type(exc).__name__) from exc
    return bytes(data)


def stream(
    location: str,
    size: int,
    pipe: Pipe,
    *,
    progress: Callable[[int], None] | None,
    retries: int,
    pause: Callable[[int], None],
) -> int:
    """Download into ``pipe`` with resume; returns how many times it resumed. ``pause(n)``
    waits before the n-th interrupted try in a row; more than ``retries`` of them give up."""
    url = FtpUrl.parse(location)
    resumes = 0
    in_a_row = 0

    def on_chunk(chunk: bytes) -> None:
        pipe.feed(chunk)
        if progress:
            progress(pipe.bytes_in)
        if pipe.bytes_in > size:
            raise _TooLongError

    while True:
        start = pipe.bytes_in
        try:
            with closing(_connect(url)) as ftp:
                ftp.retrbinary(f"RETR {url.path}", on_chunk, CHUNK, rest=start or None)
            if pipe.bytes_in >= size:
                return resumes
            reason = f"the transfer ended after {pipe.bytes_in} of {size} bytes"
        except _TooLongError:
            return resumes  # longer than the manifest says: the checksum names the problem
        except ftplib.error_perm as exc:
            raise _final(url, exc) from exc
        except (ftplib.Error, OSError, EOFError) as exc:
            reason = f"{exc or type(exc).__name__} after {pipe.bytes_in} of {size} bytes"
        in_a_row = 1 if pipe.bytes_in > start else in_a_row + 1
        if in_a_row > retries:
            raise FtpError(url.shown, f"{reason}; gave up after {resumes} resumes")
        resumes += 1
        log.warning("download of %s interrupted (%s); resuming", url.shown, reason)
        pause(in_a_row)
