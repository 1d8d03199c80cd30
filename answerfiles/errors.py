"""Problems found in an answer file, and the error that carries all of them at once.

Operators fix answer files in one pass when they see every problem together, each pointing at a
line, so parsing and validation collect ``Problem`` values instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``source:line: element path: message``; ``line`` 0 when no line applies."""

    source: str
    line: int
    path: str
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        prefix = "" if self.is_error else "warning: "
        return f"{where}: {self.path}: {prefix}{self.message}"


class AnswerFileError(Exception):
    """An answer file that cannot be used; ``problems`` lists every error found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
