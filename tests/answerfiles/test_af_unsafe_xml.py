"""Untrusted XML: DTDs, entities and external references are refused before anything expands."""

from __future__ import annotations

from pathlib import Path

import pytest

from answerfiles.errors import AnswerFileError
from answerfiles.parse import parse_answerfile

UNSAFE = Path(__file__).parent / "unsafe"

CASES = {
    "external-dtd": '<!DOCTYPE installation SYSTEM "http://192.0.2.1/evil.dtd">\n<installation/>',
    "parameter-entity": ('<!DOCTYPE installation [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                         "\n<installation/>"),
    "internal-entity": '<!DOCTYPE installation [<!ENTITY h "host">]>\n<installation/>',
}


@pytest.mark.parametrize("name", ["xxe.xml", "billion-laughs.xml"])
def test_attack_files_are_refused(name: str) -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse_answerfile((UNSAFE / name).read_bytes(), name)
    (problem,) = caught.value.problems
    assert problem.path == "xml"
    assert problem.line == 2
    assert "a DTD (<!DOCTYPE>) is refused" in problem.message


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_dtd_forms_are_refused(text: str) -> None:
    with pytest.raises(AnswerFileError, match="is refused: answer files are untrusted"):
        parse_answerfile(text)


def test_undeclared_entity_is_not_resolved() -> None:
    with pytest.raises(AnswerFileError, match="undefined entity"):
        parse_answerfile("<installation><hostname>&ent;</hostname></installation>")


def test_billion_laughs_as_bytes_is_refused() -> None:
    """The same attack through the bytes path a network download takes."""
    data = (UNSAFE / "billion-laughs.xml").read_text().encode("utf-16")
    with pytest.raises(AnswerFileError, match="refused"):
        parse_answerfile(data)
