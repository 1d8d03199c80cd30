"""Every answer-file mode has a backend, so no front-end needs a fallback of its own."""

from __future__ import annotations

from answerfiles.model import Mode
from installer import install, modes
from installer.backends import BACKENDS


def test_every_mode_has_a_backend() -> None:
    assert set(BACKENDS) == set(Mode)
    assert BACKENDS[Mode.FRESH] is BACKENDS[Mode.REINSTALL] is install.install
    assert BACKENDS[Mode.UPGRADE] is modes.upgrade
    assert BACKENDS[Mode.RESTORE] is modes.restore
