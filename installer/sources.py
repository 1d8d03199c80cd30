"""Answer files from wherever the operator put them: a path, ``file://``, ``http(s)://``.

Everything an unattended install needs arrives before any disk is touched, so a source that
cannot be read is a refusal (exit 2), never a half-done install. ``answerfile_generator=`` names
a script whose standard output is the answer file, as XCP-ng allows.
"""

from __future__ import annotations

import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from answerfiles.parse import Parsed, parse_answerfile
from common import runner
from common.errors import CommandError
from installer.errors import RefusedError

TIMEOUT_S = 30
MAX_ANSWERFILE_BYTES = 1 << 20


class SourceError(RefusedError):
    """An answer file (or generator) that cannot be fetched."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"cannot read the answer file from {location}: {reason}")


@dataclass(frozen=True)
class Loaded:
    data: bytes
    location: str


def read_location(location: str, *, limit: int = MAX_ANSWERFILE_BYTES) -> bytes:
    """The bytes at a path, ``file://`` or ``http(s)://`` URL, at most ``limit`` of them."""
    parsed = urllib.parse.urlsplit(location)
    try:
        if parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(location, timeout=TIMEOUT_S) as resp:  # noqa: S310
                data = resp.read(limit + 1)
        elif parsed.scheme == "file":
            data = _read_file(Path(urllib.parse.unquote(parsed.path)), limit)
        elif parsed.scheme == "" or len(parsed.scheme) == 1:
            data = _read_file(Path(location), limit)
        else:
            raise SourceError(location, f"unsupported scheme {parsed.scheme!r} (path, file, http)")
    except urllib.error.HTTPError as exc:
        raise SourceError(location, f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise SourceError(location, str(exc.reason)) from exc
    except OSError as exc:
        raise SourceError(location, exc.strerror or str(exc)) from exc
    if len(data) > limit:
        raise SourceError(location, f"larger than {limit} bytes; is this an answer file?")
    return data


def _read_file(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def load_answerfile(location: str) -> Loaded:
    return Loaded(read_location(location), location)


def run_generator(location: str) -> Loaded:
    """Fetch the generator script, run it, and take its standard output as the answer file."""
    script = read_location(location)
    if not script.startswith(b"#!"):
        raise SourceError(location, "the answer-file generator does not start with '#!'")
    with tempfile.TemporaryDirectory(prefix="xcp-answergen-") as tmp:
        path = Path(tmp) / "generator"
        path.write_bytes(script)
        path.chmod(stat.S_IRWXU)
        try:
            result = runner.run([path], timeout=300, env={"XS_STAGE": "answerfile-generator"})
        except CommandError as exc:
            raise SourceError(location, f"the generator failed: {exc}") from exc
    return Loaded(result.stdout.encode(), f"{location} (generated)")


def parse_loaded(loaded: Loaded) -> Parsed:
    """Parse and validate; ``AnswerFileError`` lists every problem with its line."""
    return parse_answerfile(loaded.data, loaded.location)
