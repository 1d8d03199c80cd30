"""Errors of the lab, each naming the step of the boot chain that broke."""

from __future__ import annotations


class LabError(Exception):
    """The lab could not build, start or check something; the message says what and where."""

    def __init__(self, step: str, detail: str) -> None:
        self.step = step
        self.detail = detail
        super().__init__(f"{step}: {detail}")
