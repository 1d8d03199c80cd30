"""``<source>``: what the installer can read is accepted, what it cannot is refused with the
reason, and ``gpgcheck``/``repo-gpgcheck`` keep "not written" apart from "true"."""

from __future__ import annotations

import pytest

from answerfiles.errors import AnswerFileError
from answerfiles.model import Source, SourceType
from answerfiles.parse import parse_answerfile
from answerfiles.write import write_answerfile

IFACE = '<admin-interface name="eth0" proto="dhcp"/>'


def parse(*sources: str, root: str = "<installation>"):
    xml = f"{root}<primary-disk>sda</primary-disk>{''.join(sources)}{IFACE}</installation>"
    return parse_answerfile(xml, "af.xml")


@pytest.mark.parametrize(
    "source",
    [
        '<source type="nfs">nfs.example.com:/releases/r1</source>',
        '<source type="url">nfs://nfs.example.com:/releases/r1</source>',
    ],
)
def test_nfs_is_refused_with_what_to_use_instead(source: str) -> None:
    with pytest.raises(AnswerFileError) as refused:
        parse(source)
    message = str(refused.value)
    assert "NFS sources are not supported: this installer cannot mount NFS" in message
    assert 'put it on a medium labelled XCP_RELEASE and write <source type="local"/>' in message


def test_a_second_source_is_refused_not_ignored() -> None:
    with pytest.raises(AnswerFileError) as refused:
        parse('<source type="url">http://a.example.com/r1</source>', '<source type="local"/>')
    (problem,) = refused.value.problems
    assert str(problem).startswith(
        "af.xml:1: installation/source: found 2 <source> elements: "
        "this installer lays down one release"
    )


@pytest.mark.parametrize(
    "source",
    [
        '<source type="url">ftp://mirror.example.com/releases/r1</source>',
        '<source type="url">ftp://site:secret@mirror.example.com/r1</source>',
        '<source type="url">file:///srv/releases/r1</source>',
        '<source type="local"/>',
    ],
)
def test_what_the_installer_reads_is_accepted(source: str) -> None:
    assert len(parse(source).answers.sources) == 1


def test_gpg_attributes_are_kept_as_written_and_unset_when_absent() -> None:
    af = parse(
        '<source type="url" gpgcheck="NO">http://a.example.com/r1</source>',
        root='<installation repo-gpgcheck="yes">',
    ).answers
    assert (af.gpgcheck, af.repo_gpgcheck) == (None, True)
    assert af.sources[0] == Source(SourceType.URL, "http://a.example.com/r1", gpgcheck=False)
    plain = parse('<source type="local"/>').answers
    assert (plain.gpgcheck, plain.repo_gpgcheck) == (None, None)
    assert plain.sources[0] == Source(SourceType.LOCAL)


def test_a_source_attribute_that_is_not_a_boolean_is_an_error() -> None:
    with pytest.raises(AnswerFileError, match=r'repo-gpgcheck="maybe" is \'maybe\', not a boolean'):
        parse('<source type="local" repo-gpgcheck="maybe"/>')


def test_the_writer_writes_only_what_was_said() -> None:
    af = parse(
        '<source type="url" repo-gpgcheck="true">http://a.example.com/r1</source>',
        root='<installation gpgcheck="false">',
    ).answers
    xml = write_answerfile(af)
    root = next(line for line in xml.splitlines() if line.startswith("<installation "))
    assert 'gpgcheck="false"' in root and "repo-gpgcheck" not in root
    assert '<source type="url" repo-gpgcheck="true">http://a.example.com/r1</source>' in xml
    assert parse_answerfile(xml, "again.xml").answers == af
    unsaid = write_answerfile(parse('<source type="local"/>').answers)
    assert "gpgcheck" not in unsaid
