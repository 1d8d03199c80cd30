"""Errors every layer can meet, each rendered as one sentence (``str(err)``).

``exit_code`` is how a command line ends on the error: 1 for a failure while working, 2 for a
refusal that promises nothing was written. The installer's own errors derive from
:class:`ReportedError` so one ``except`` at each front-end turns all of them into a sentence.
"""

from __future__ import annotations


class ReportedError(Exception):
    """Base of every error that reaches a user as one sentence."""

    exit_code = 1


class CommandError(ReportedError):
    """An external command exited non-zero (or could not start)."""

    def __init__(self, cmd: list[str], returncode: int, stderr: str, stdout: str = "") -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        detail = (self.stderr or self.stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        return f"command {' '.join(self.cmd)!r} failed with exit code {self.returncode}: {last}"


class CommandForbiddenError(ReportedError):
    """A test (or a dry run) forbade running external commands and one was attempted."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = list(cmd)
        super().__init__(f"running {' '.join(self.cmd)!r} is forbidden here")
