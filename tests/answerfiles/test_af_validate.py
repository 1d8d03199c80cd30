"""Semantic checks on models built without XML (the TUI's path): same rules, readable paths."""

from __future__ import annotations

from answerfiles.model import AdminInterface, AnswerFile, PrimaryDisk, Proto, Source, SourceType
from answerfiles.validate import validate_answers


def test_empty_fresh_model_lists_every_missing_part() -> None:
    lines = [str(p) for p in validate_answers(AnswerFile())]
    assert [line.split(": ")[2].split(":")[0] for line in lines] == [
        "no <source> found", "no <primary-disk> found", "no <admin-interface> found"]
    assert all(line.startswith("answers: installation: ") for line in lines)


def test_model_problems_name_the_element() -> None:
    answers = AnswerFile(
        sources=(Source(SourceType.URL, "http://repo.example.com/"),),
        primary_disk=PrimaryDisk("sda"),
        admin_interface=AdminInterface(name="eth0", proto=Proto.STATIC, ipaddr="192.0.2.5",
                                       subnet="255.255.255.0"),
    )
    assert [str(p) for p in validate_answers(answers)] == [
        'answers: installation/admin-interface: proto="static" needs <gateway>']


def test_valid_model_has_no_problems() -> None:
    answers = AnswerFile(
        sources=(Source(SourceType.LOCAL),),
        primary_disk=PrimaryDisk("nvme0n1"),
        admin_interface=AdminInterface(hwaddr="00:16:3e:00:00:01"),
    )
    assert validate_answers(answers) == []
