"""Typed installer errors.

Every error a user can meet carries its context and renders as one sentence (``str(err)``). The
split between refusal and failure is the exit-code contract of ``xcp-install``: a refusal (exit 2)
promises that nothing was written; a failure (exit 1) happened while working.
"""

from __future__ import annotations

from common.errors import ReportedError


class InstallerError(ReportedError):
    """Base of every error the installer reports to a user."""


class RefusedError(InstallerError):
    """Stopped before anything was written: invalid input or a guard rail."""

    exit_code = 2


class FailedError(InstallerError):
    """Something went wrong while working; the disk may be partly written."""

    exit_code = 1
