"""The log of one installer run (install, upgrade or restore), kept on the host it made.

Everything is captured in memory from the start, because the logs partition is only mounted
halfway through; it is then written under ``/var/log/installer/`` whatever happens next.
"""

from __future__ import annotations

import io
import logging
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

LOG_DIR = "var/log/installer"


class LogCapture:
    """Every installer log record of this run, kept to be written to the logs partition."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        self.handler.setLevel(logging.DEBUG)

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self.handler)
        root.setLevel(min(root.level or logging.DEBUG, logging.DEBUG))
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)

    def text(self) -> str:
        return self.buffer.getvalue()


def save_log(root: Path, text: str, kind: str = "install") -> None:
    """The log on the logs partition; a failure to save it must not hide the cause."""
    try:
        directory = root / LOG_DIR
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{kind}-{uuid.uuid4().hex[:8]}.log").write_text(text)
        (directory / f"{kind}.log").write_text(text)
    except OSError as exc:
        log.warning("could not save the %s log under %s: %s", kind, root / LOG_DIR, exc)
