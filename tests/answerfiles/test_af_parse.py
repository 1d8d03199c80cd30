"""Parsing XCP-ng 8.3 answer files: the documented examples, defaults, old spellings, FIXes."""

from __future__ import annotations

from pathlib import Path
from xml.dom import minidom

import pytest
from passlib.hash import sha512_crypt

from answerfiles.errors import AnswerFileError, Problem
from answerfiles.model import (
    BootloaderLocation,
    DiskRule,
    Mode,
    NetworkBackend,
    NtpSource,
    PreserveFirstPartition,
    Proto,
    ProtoV6,
    Raid,
    ScriptStage,
    ServiceState,
    SourceType,
    SrType,
)
from answerfiles.parse import parse_answerfile
from answerfiles.password import crypt_scheme

VALID = Path(__file__).parent / "valid"
INVALID = Path(__file__).parent / "invalid"
SRC = '<source type="url">http://repo.example.com/xcp-ng/</source>'
IFACE = '<admin-interface name="eth0" proto="dhcp"/>'


def fresh(*inner: str, root: str = "<installation>") -> str:
    tag = root[1:].split(maxsplit=1)[0].rstrip(">")
    return "\n".join([root, *inner, f"</{tag}>"])


def parse(text: str):
    return parse_answerfile(text, "af.xml")


@pytest.mark.parametrize("path", sorted(VALID.glob("*.xml")), ids=lambda p: p.stem)
def test_every_valid_file_parses(path: Path) -> None:
    parse_answerfile(path.read_bytes(), path.name)


def test_xcpng_documentation_example() -> None:
    parsed = parse_answerfile((VALID / "xcpng-doc-fresh.xml").read_bytes(), "doc.xml")
    af = parsed.answers
    assert af.mode is Mode.FRESH
    assert af.sr_type is SrType.EXT
    assert af.primary_disk.disk == "sda"
    assert af.primary_disk.guest_storage is True
    assert af.primary_disk.preserve_first_partition is PreserveFirstPartition.IF_UTILITY
    assert af.guest_disks == ("sdb", "sdc")
    assert af.sources[0].type is SourceType.URL
    assert af.sources[0].location == "http://pxehost.example.com/xcp-ng/"
    assert [(s.stage, s.location) for s in af.scripts] == [
        (
            ScriptStage.FILESYSTEM_POPULATED,
            "http://pxehost.example.com/myscripts/post-install-script",
        )
    ]
    assert af.admin_interface.name == "eth0"
    assert af.admin_interface.proto is Proto.DHCP
    assert af.timezone == "Europe/Paris"
    assert af.keymap == "us"
    assert af.hostname == "localhost.localdomain"
    assert af.ntp.source is NtpSource.DHCP  # inferred: the admin interface uses DHCP
    assert af.network_backend is NetworkBackend.OPENVSWITCH
    assert af.bootloader.location is BootloaderLocation.MBR
    assert af.ui_confirmation_prompt is False


def test_plaintext_password_is_hashed_and_never_repeated() -> None:
    parsed = parse_answerfile((VALID / "xcpng-doc-fresh.xml").read_bytes(), "doc.xml")
    digest = parsed.answers.root_password_hash
    assert crypt_scheme(digest) == "SHA-512"
    assert sha512_crypt.verify("mypassword", digest)
    assert len(parsed.warnings) == 1
    warning = parsed.warnings[0]
    assert str(warning).startswith("doc.xml:7: installation/root-password: warning: plaintext")
    assert "mypassword" not in str(warning)
    assert "mypassword" not in repr(parsed)


def test_raid_example_installs_onto_the_mirror_of_its_members() -> None:
    parsed = parse_answerfile((VALID / "xcpng-raid.xml").read_bytes(), "raid.xml")
    assert parsed.answers.raid == Raid("md127", ("sda", "sdb"))
    assert parsed.answers.primary_disk.disk == "md127"
    assert parsed.answers.sr_type is SrType.LVM


def test_raid_that_is_not_the_primary_disk_is_refused() -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse_answerfile((INVALID / "raid-not-primary.xml").read_bytes(), "raid.xml")
    assert [(p.line, p.path) for p in caught.value.problems] == [(3, "installation/raid")]
    assert "write <primary-disk>md127</primary-disk> or remove <raid>" in str(caught.value)


def test_upgrade_example() -> None:
    parsed = parse_answerfile((VALID / "xcpng-upgrade.xml").read_bytes())
    assert parsed.answers.mode is Mode.UPGRADE
    assert parsed.answers.existing_installation == "sda"
    assert parsed.answers.primary_disk is None
    assert parsed.warnings == ()


def test_restore_example() -> None:
    af = parse_answerfile((VALID / "restore.xml").read_bytes()).answers
    assert af.mode is Mode.RESTORE
    assert af.backup_disk == "disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert af.scripts[0].stage is ScriptStage.INSTALLATION_COMPLETE
    assert af.sources == ()


def test_every_element_and_old_spelling() -> None:
    parsed = parse_answerfile((VALID / "everything.xml").read_bytes())
    af = parsed.answers
    assert parsed.warnings == ()
    assert (af.mode, af.sr_type, af.gpgcheck, af.repo_gpgcheck) == (
        Mode.FRESH,
        SrType.LVM,
        True,
        False,
    )
    assert [s.type for s in af.sources] == [SourceType.URL]
    assert [s.stage for s in af.scripts] == [
        ScriptStage.INSTALLATION_START,
        ScriptStage.INSTALLATION_COMPLETE,
        ScriptStage.FILESYSTEM_POPULATED,
    ]
    assert af.bootloader.location is BootloaderLocation.MBR  # read in any case
    assert af.bootloader.write_boot_entry is False
    assert af.network_backend is NetworkBackend.OPENVSWITCH  # "vswitch" is the old name
    assert af.primary_disk.guest_storage is False
    assert af.primary_disk.sr_at_end is True
    assert af.primary_disk.preserve_first_partition is PreserveFirstPartition.TRUE
    assert af.guest_disks == ("sdb", "/dev/sdc")  # found inside the <guest-disks> wrapper
    iface = af.admin_interface
    assert (iface.hwaddr, iface.name, iface.vlan) == ("00:16:3e:12:34:56", None, 42)
    assert (iface.proto, iface.ipaddr, iface.subnet, iface.gateway) == (
        Proto.STATIC,
        "192.0.2.10",
        "255.255.255.0",
        "192.0.2.1",
    )
    assert (iface.protov6, iface.ipv6, iface.gatewayv6) == (
        ProtoV6.STATIC,
        "2001:db8::10/64",
        "2001:db8::1",
    )
    assert af.name_servers == ("192.0.2.53", "2001:db8::53")
    assert af.ntp.source is NtpSource.MANUAL  # inferred from the listed servers
    assert af.ntp.servers == ("ntp1.example.com", "192.0.2.123")
    assert [(s.name, s.state) for s in af.services] == [
        ("sshd", ServiceState.ENABLED),
        ("xe-linux-distribution", ServiceState.DISABLED),
    ]
    prov = af.provisioning
    assert prov.server_url == "https://provision.example.com:8443/"
    assert prov.token == "9f0c2a1e-token"
    assert (prov.pool, prov.pool_force) == ("rack4", True)
    assert prov.disk_rule == DiskRule(serial="S45PNA0M", min_size_gib=200, smallest=True)


def test_extensions_are_invisible_to_xcpng_lookups() -> None:
    """XCP-ng finds elements with minidom's getElementsByTagName by plain name."""
    dom = minidom.parse(str(VALID / "everything.xml"))
    for name in ("provisioning", "server-url", "token", "pool", "disk-rule"):
        assert dom.getElementsByTagName(name) == []
    assert len(dom.getElementsByTagName("guest-disk")) == 2


@pytest.mark.parametrize("text", ["false", "FALSE", "no", ""])
def test_ui_confirmation_prompt_false_means_false(text: str) -> None:
    """FIX: XCP-ng reads any non-empty text, "false" included, as true."""
    af = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            IFACE,
            f"<ui-confirmation-prompt>{text}</ui-confirmation-prompt>",
        )
    ).answers
    assert af.ui_confirmation_prompt is False


@pytest.mark.parametrize("text", ["true", "Yes", "TRUE"])
def test_ui_confirmation_prompt_true_is_refused(text: str) -> None:
    """An unattended install here never stops to ask, so a request to ask is refused."""
    with pytest.raises(AnswerFileError, match="<ui-confirmation-prompt> is not supported"):
        parse(
            fresh(
                "<primary-disk>sda</primary-disk>",
                SRC,
                IFACE,
                f"<ui-confirmation-prompt>{text}</ui-confirmation-prompt>",
            )
        )


def test_defaults_as_xcpng_83_applies_them() -> None:
    af = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            '<admin-interface name="eth0" proto="static"><ipaddr>192.0.2.5</ipaddr>'
            "<subnet>255.255.255.0</subnet><gateway>192.0.2.1</gateway>"
            "</admin-interface>",
        )
    ).answers
    assert af.sr_type is None  # XCP-ng chooses with the disks in hand: ext, or largeblock on 4Kn
    # Not written: the installer decides (true when it holds a site keyring), not the parser.
    assert (af.gpgcheck, af.repo_gpgcheck) == (None, None)
    assert (af.hostname, af.timezone, af.keymap) == ("localhost.localdomain", "Etc/UTC", "us")
    assert af.ntp.source is NtpSource.DEFAULT  # static interface, no servers
    assert af.root_password_hash is None
    assert af.bootloader.write_boot_entry is True
    assert af.admin_interface.protov6 is ProtoV6.NONE


def test_upgrade_root_is_installation_and_warns_without_mode() -> None:
    parsed = parse(fresh("<primary-disk>sda</primary-disk>", SRC, IFACE, root="<upgrade>"))
    assert parsed.answers.mode is Mode.FRESH
    assert any("FRESH install" in w.message for w in parsed.warnings)
    upgrade = parse(
        fresh(
            "<existing-installation>sda</existing-installation>",
            SRC,
            root='<upgrade mode="upgrade">',
        )
    )
    assert upgrade.answers.mode is Mode.UPGRADE
    assert upgrade.warnings == ()


def test_elements_found_anywhere_below_the_root() -> None:
    af = parse(
        fresh(
            "<storage><disks><primary-disk>sda</primary-disk></disks></storage>",
            f"<where>{SRC}</where>",
            f"<net>{IFACE}</net>",
        )
    ).answers
    assert af.primary_disk.disk == "sda"
    assert af.sources[0].location == "http://repo.example.com/xcp-ng/"


def test_unknown_repeated_and_ignored_elements_are_warned_about() -> None:
    parsed = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            IFACE,
            "<hostname>one</hostname>",
            "<hostname>two</hostname>",
            "<primary-disc>sdb</primary-disc>",
            "<existing-installation>sda</existing-installation>",
        )
    )
    assert parsed.answers.hostname == "one"
    messages = [str(w) for w in parsed.warnings]
    assert (
        "af.xml:6: installation/hostname: warning: repeated <hostname> is ignored: the one "
        "on line 5 applies" in messages
    )
    assert (
        "af.xml:7: installation/primary-disc: warning: unknown element <primary-disc> is "
        "ignored" in messages
    )
    assert (
        "af.xml:8: installation/existing-installation: warning: <existing-installation> "
        "does nothing in mode fresh and is ignored" in messages
    )


def test_static_addresses_ignored_without_static_protocol() -> None:
    parsed = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            '<admin-interface name="eth0" proto="dhcp">',
            "<ipaddr>192.0.2.5</ipaddr>",
            "</admin-interface>",
        )
    )
    assert parsed.answers.admin_interface.ipaddr is None
    assert "the interface's proto is not static" in parsed.warnings[0].message


def test_booleans_any_case() -> None:
    af = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            IFACE,
            root='<installation gpgcheck="NO" repo-gpgcheck="True">',
        )
    ).answers
    assert (af.gpgcheck, af.repo_gpgcheck) == (False, True)


def test_every_problem_reported_at_once_in_line_order() -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse(
            fresh(
                '<admin-interface name="eth0" proto="static" vlan="0">',
                "<ipaddr>192.0.2.5</ipaddr>",
                "</admin-interface>",
                "<hostname>bad_name</hostname>",
                "<timezone>Mars/Olympus</timezone>",
            )
        )
    lines = str(caught.value).splitlines()
    assert lines == [str(p) for p in caught.value.problems]
    assert lines[0].startswith("af.xml:1: installation: no <source> found")
    assert (
        'af.xml:2: installation/admin-interface: vlan="0" is out of range: allowed 1-4094' in lines
    )
    assert 'af.xml:2: installation/admin-interface: proto="static" needs <subnet>' in lines
    assert 'af.xml:2: installation/admin-interface: proto="static" needs <gateway>' in lines
    assert any(line.startswith("af.xml:5: installation/hostname:") for line in lines)
    assert any(line.startswith("af.xml:6: installation/timezone:") for line in lines)
    assert [p.line for p in caught.value.problems] == sorted(p.line for p in caught.value.problems)


def test_bytes_with_declared_encoding() -> None:
    text = fresh("<primary-disk>sda</primary-disk>", SRC, IFACE, "<keymap>fr</keymap>")
    data = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<!-- clé -->\n' + text).encode("latin-1")
    assert parse_answerfile(data).answers.keymap == "fr"


def test_problem_renders_as_one_line() -> None:
    assert str(
        Problem("af.xml", 7, "installation/admin-interface", 'proto="static" needs <gateway>')
    ) == ('af.xml:7: installation/admin-interface: proto="static" needs <gateway>')
    assert str(Problem("answers", 0, "installation", "x", "warning")) == (
        "answers: installation: warning: x"
    )


def test_nested_elements_outside_their_parent_are_warned_about() -> None:
    parsed = parse(
        fresh("<primary-disk>sda</primary-disk>", SRC, IFACE, "<gateway>192.0.2.1</gateway>")
    )
    assert [str(w) for w in parsed.warnings] == [
        "af.xml:5: installation/gateway: warning: <gateway> outside <admin-interface> is ignored"
    ]


def test_gateway_outside_the_subnet_is_a_warning() -> None:
    parsed = parse(
        fresh(
            "<primary-disk>sda</primary-disk>",
            SRC,
            '<admin-interface name="eth0" proto="static">',
            "<ipaddr>192.0.2.5</ipaddr><subnet>255.255.255.0</subnet>",
            "<gateway>198.51.100.1</gateway>",
            "</admin-interface>",
        )
    )
    assert [str(w) for w in parsed.warnings] == [
        "af.xml:6: installation/admin-interface/gateway: warning: <gateway> 198.51.100.1 is "
        "outside 192.0.2.0/24"
    ]


def test_disk_rule_replaces_primary_disk_and_guest_disks_are_still_checked() -> None:
    root = '<installation xmlns:xp="urn:xcp-provision:answerfile:1">'
    af = parse(
        fresh(SRC, IFACE, '<xp:disk-rule min-size-gib="100" smallest="yes"/>', root=root)
    ).answers
    assert af.primary_disk is None
    assert af.provisioning.disk_rule == DiskRule(min_size_gib=100, smallest=True)
    with pytest.raises(AnswerFileError, match="guest disk 'sdb' is listed twice"):
        parse(
            fresh(
                SRC,
                IFACE,
                '<xp:disk-rule serial="X"/>',
                "<guest-disk>sdb</guest-disk>",
                "<guest-disk>sdb</guest-disk>",
                root=root,
            )
        )


def test_problems_point_at_the_right_element_when_one_is_skipped() -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse(
            fresh(
                "<primary-disk>sda</primary-disk>",
                IFACE,
                "<source>http://a.example.com/</source>",
                '<source type="url">gopher://b.example.com/</source>',
            )
        )
    assert [(p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        (4, '<source> needs type="local|url|nfs"'),
        (5, "URL 'gopher"),
    ]


def test_an_unknown_mode_stops_at_once() -> None:
    with pytest.raises(AnswerFileError) as caught:
        parse(fresh(root='<installation mode="upgrde">'))
    assert [str(p) for p in caught.value.problems] == [
        'af.xml:1: installation: mode="upgrde" is not allowed: allowed fresh|reinstall|upgrade'
    ]
