"""Each file in invalid/ is refused with its own message, at its own line.

The first line of every file is a comment ``<!-- expect: LINE: PATH: MESSAGE -->``; the file's
problems must include one that reads ``FILE:LINE: PATH: MESSAGE...``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from answerfiles.errors import AnswerFileError
from answerfiles.parse import parse_answerfile

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.xml"))


def _expectation(path: Path) -> str:
    found = re.match(r"<!-- expect: (.*) -->", path.read_text(encoding="utf-8"))
    assert found, f"{path.name} lacks its expect comment"
    return f"{path.name}:{found.group(1)}"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_fails_with_its_message(path: Path) -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse_answerfile(path.read_bytes(), source=path.name)
    lines = [str(p) for p in caught.value.problems]
    expected = _expectation(path)
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)
    assert all(p.is_error for p in caught.value.problems)


def test_corpus_messages_are_all_different() -> None:
    messages = [_expectation(p).split(": ", 2)[-1] for p in INVALID]
    assert len(INVALID) >= 40
    assert len(set(messages)) == len(messages)
