"""Semantic checks on models built without XML (the TUI's path): same rules, readable paths."""

from __future__ import annotations

from dataclasses import replace

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


def test_root_password_hashes_of_every_shadow_scheme_are_taken() -> None:
    """XCP-ng answer files carry whatever crypt(3) hash their authors made: all work; MD5 warns."""
    base = AnswerFile(
        sources=(Source(SourceType.URL, "http://repo.example.com/"),),
        primary_disk=PrimaryDisk("sda"),
        admin_interface=AdminInterface(name="eth0"),
    )
    taken = {
        "$6$saltsalt$" + "a" * 86: [],
        "$5$rounds=535000$OZSKz1ZH6zd0wi/S$w3ZUQEmgldXPklWwSwPfSucufDC/DmYaVBH8wRlS8W1": [],
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7": [],
        "$2b$12$qpv55hHUJGjuT1xpH33m8uKNyE6a6ng7HjPuI3UPZquBLrzpgBMwS": [],
        "$1$TCiIpAw7$/wjtt/cm6aGxCfoT1QiNi0": ["warning"],
        "$6$abcdefgh$tooshort": ["error"],
        "plain-text-by-mistake": ["error"],
    }
    for digest, severities in taken.items():
        found = validate_answers(replace(base, root_password_hash=digest))
        assert [p.severity for p in found] == severities, digest
        assert all(digest not in str(p) for p in found)
