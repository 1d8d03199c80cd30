"""Where each part of an answer file came from, so a problem found later can name its line.

Validation works on the model (the TUI builds one without any XML), so the parser records, per
element it read, the line and element path; validation asks here when it reports a problem.
"""

from __future__ import annotations

from answerfiles.errors import Problem, Severity


class Locations:
    """Line and element path per key: the element name, ``name#i`` for the i-th repeated one."""

    def __init__(self, source: str, root_path: str, root_line: int = 0) -> None:
        self.source = source
        self.root_path = root_path
        self.root_line = root_line
        self._at: dict[str, tuple[int, str]] = {}

    def note(self, key: str, line: int, path: str) -> None:
        self._at.setdefault(key, (line, path))

    def at(self, key: str) -> tuple[int, str]:
        """Where ``key`` was read; for a part the file never had, the root (by name, for models)."""
        if key in self._at:
            return self._at[key]
        return self.root_line, f"{self.root_path}/{key.split('#', maxsplit=1)[0]}"

    def problem(self, key: str, message: str, severity: Severity = "error") -> Problem:
        line, path = self.at(key) if key else (self.root_line, self.root_path)
        return Problem(self.source, line, path, message, severity)

    def missing(self, message: str) -> Problem:
        """A mandatory part is absent: reported at the root element."""
        return Problem(self.source, self.root_line, self.root_path, message)
