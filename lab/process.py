"""Background processes the lab owns: started with their output in a file, always stopped by pid.

Each one runs in its own session. A stop sends SIGTERM to the top process only (``ip netns exec``
execs the command, and ``timeout --foreground`` relays the signal once to its child: a second
SIGTERM would hit a server in the middle of its clean shutdown), then SIGKILL to the whole
session if that was not enough.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.runner import start

log = logging.getLogger(__name__)


@dataclass
class Background:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, SIGKILL to its session after ``grace`` seconds; returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.pid)
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=grace)
        _signal_group(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def launch(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    env: dict[str, str] | None = None,
) -> Background:
    """Start ``argv`` with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = start(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    argv_text = [os.fspath(a) for a in argv]
    log.info("started %s (pid %d): %s", name, proc.pid, " ".join(argv_text))
    return Background(name, argv_text, log_path, proc)


@contextlib.contextmanager
def stopped_unless_ready(*processes: Background) -> Iterator[None]:
    """Around the wait for processes just launched to be ready: a failure, or an interrupt
    (Ctrl-C, or SIGTERM in the test suite), stops them, since nothing has taken them over for
    teardown yet; a run interrupted while its server was starting again left that server behind
    until ``bounded``'s timeout."""
    try:
        yield
    except BaseException:
        for process in processes:
            process.stop()
        raise


def bounded(max_seconds: float) -> list[str]:
    """Prefix that kills a command after ``max_seconds`` even if the harness itself died."""
    return ["timeout", "--foreground", "--signal=KILL", f"{int(max_seconds)}"]
