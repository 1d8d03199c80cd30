"""Typed installer errors.

Every error a user can meet carries its context and renders as one sentence (``str(err)``). The
split between refusal and failure is the exit-code contract of ``xcp-install``: a refusal (exit 2)
promises that nothing was written; a failure (exit 1) happened while working.
"""

from __future__ import annotations


class InstallerError(Exception):
    """Base of every error the installer reports to a user."""

    exit_code = 1


class RefusedError(InstallerError):
    """Stopped before anything was written: invalid input or a guard rail."""

    exit_code = 2


class FailedError(InstallerError):
    """Something went wrong while working; the disk may be partly written."""

    exit_code = 1


class CommandError(FailedError):
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


class CommandForbiddenError(InstallerError):
    """A test (or a dry run) forbade running external commands and one was attempted."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = list(cmd)
        super().__init__(f"running {' '.join(self.cmd)!r} is forbidden here")
