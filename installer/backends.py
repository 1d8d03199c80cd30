"""From an answer file's mode to the backend that carries it out: the one entry point that
every front-end (unattended command line, TUI) calls, so they cannot drift apart.

Fresh install and reinstall share a backend, since both write a new installation onto the primary
disk; upgrade and restore keep the host's data and live in ``installer.modes``.
"""

from __future__ import annotations

from typing import Protocol

from answerfiles.model import AnswerFile, Mode
from installer import install, modes
from installer.plan import BootMode
from installer.progress import Reporter


class Backend(Protocol):
    def __call__(
        self,
        answers: AnswerFile,
        *,
        target: str | None = None,
        boot_mode: BootMode | None = None,
        reporters: tuple[Reporter, ...] = (),
    ) -> object: ...


BACKENDS: dict[Mode, Backend] = {
    Mode.FRESH: install.install,
    Mode.REINSTALL: install.install,
    Mode.UPGRADE: modes.upgrade,
    Mode.RESTORE: modes.restore,
}


def run_answers(
    answers: AnswerFile,
    *,
    target_disk: str | None,
    boot_mode: BootMode | None,
    reporters: tuple[Reporter, ...],
) -> None:
    """Run the backend for the answer file's mode; raises a ``ReportedError`` on failure."""
    BACKENDS[answers.mode](answers, target=target_disk, boot_mode=boot_mode, reporters=reporters)
