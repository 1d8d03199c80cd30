"""The installer's kernel command line, the autoinstall device and answer-file sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.release_server import ReleaseServer

from answerfiles.errors import AnswerFileError
from common import runner
from installer import cmdline, sources

ANSWERS = b"""<?xml version="1.0"?>
<installation srtype="ext">
    <primary-disk>sda</primary-disk>
    <keymap>us</keymap>
    <root-password>mypassword</root-password>
    <source type="url">http://pxehost.example.com/xcp-ng/</source>
    <admin-interface name="eth0" proto="dhcp" />
    <hostname>rack1-h07</hostname>
    <timezone>Europe/Paris</timezone>
</installation>
"""


def test_pxe_command_line_words() -> None:
    args = cmdline.parse_cmdline(
        "console=hvc0 answerfile=http://srv/a.xml network_device=52:54:00:12:34:56 "
        "network_config=static:ip=10.0.0.5;netmask=255.255.255.0;gateway=10.0.0.1;"
        "dns=10.0.0.2,10.0.0.3;domain=lab.example;vlan=42 atexit=poweroff install"
    )
    assert args.answerfile == "http://srv/a.xml"
    assert args.network_device == "52:54:00:12:34:56"
    assert args.atexit == "poweroff"
    assert args.install
    net = args.network_config
    assert not net.dhcp
    assert (net.ip, net.netmask, net.gateway) == ("10.0.0.5", "255.255.255.0", "10.0.0.1")
    assert net.dns == ("10.0.0.2", "10.0.0.3")
    assert (net.domain, net.vlan) == ("lab.example", 42)


def test_defaults_and_old_spellings() -> None:
    args = cmdline.parse_cmdline("answerfile_device=eth1 answerfile_generator=http://s/gen")
    assert args.network_device == "eth1"
    assert args.answerfile is None and args.answerfile_generator == "http://s/gen"
    assert args.atexit == "reboot"
    assert args.network_config == cmdline.NetworkConfig(dhcp=True)
    assert cmdline.parse_cmdline("network_config=dhcp:vlan=7").network_config.vlan == 7


@pytest.mark.parametrize(
    ("word", "says"),
    [
        ("network_config=static:ip=10.0.0.5", "netmask"),
        ("network_config=static:ip=10.0.0.300;netmask=255.0.0.0", "not an IP address"),
        ("network_config=dhcp:vlan=5000", "VLAN id"),
        ("network_config=dhcp:ip=1.2.3.4", "dhcp takes only vlan"),
        ("network_config=bootp", "expected dhcp or static"),
        ("atexit=explode", "reboot, poweroff, shell"),
        ("host_console=ttyS1", "serial+vga, vga, serial"),
    ],
)
def test_bad_words_are_refused_with_the_word_named(word: str, says: str) -> None:
    with pytest.raises(cmdline.CmdlineError) as err:
        cmdline.parse_cmdline(f"quiet {word}")
    assert says in str(err.value)
    assert word.split("=", 1)[0] in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("words", "console"),
    [("quiet", "serial+vga"), ("host_console=vga", "vga"), ("host_console=serial", "serial")],
)
def test_the_installed_hosts_console_is_a_boot_word(words: str, console: str) -> None:
    assert cmdline.parse_cmdline(f"console=ttyS0 {words}").host_console == console


def test_autoinstall_vfat_device_is_read_without_mounting(tmp_path: Path) -> None:
    image = tmp_path / "stick.img"
    runner.run(["mkfs.vfat", "-n", "AUTOINSTALL", "-C", image, "2048"])
    words = tmp_path / "cmdline"
    words.write_text("answerfile=http://srv/x.xml atexit=shell\n")
    runner.run(["mcopy", "-i", image, words, "::cmdline"])
    args = cmdline.parse_cmdline(cmdline.read_autoinstall_cmdline(str(image)))
    assert (args.answerfile, args.atexit) == ("http://srv/x.xml", "shell")


def test_autoinstall_ext4_device_and_missing_file(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "cmdline").write_text("answerfile=file:///a.xml\n")
    image = tmp_path / "stick.img"
    runner.run(["mkfs.ext4", "-q", "-L", "autoinstall", "-d", tree, image, "4M"])
    assert "answerfile=file:///a.xml" in cmdline.read_autoinstall_cmdline(str(image))
    empty = tmp_path / "empty.img"
    runner.run(["mkfs.ext4", "-q", "-L", "autoinstall", empty, "4M"])
    with pytest.raises(cmdline.CmdlineError, match="no file 'cmdline'"):
        cmdline.read_autoinstall_cmdline(str(empty))


def test_autoinstall_device_replaces_proc_cmdline(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "cmdline").write_text(f"answerfile=http://srv/{os.getpid()}.xml\n")
    image = tmp_path / "stick.img"
    runner.run(["mkfs.ext4", "-q", "-L", "autoinstall", "-d", tree, image, "4M"])
    proc = tmp_path / "proc-cmdline"
    proc.write_text("answerfile=http://other/ignored.xml")
    loop = runner.run(["losetup", "--find", "--show", image]).stdout.strip()
    try:
        assert loop in cmdline.find_autoinstall_devices()
        first = cmdline.find_autoinstall_device()
        args = cmdline.boot_args(proc)
        # Another test's autoinstall device may come first; ours is read when it is first.
        expected = cmdline.parse_cmdline(cmdline.read_autoinstall_cmdline(first)).answerfile
    finally:
        runner.run(["losetup", "-d", loop])
    assert args.answerfile == expected != "http://other/ignored.xml"
    if first == loop:
        assert args.answerfile == f"http://srv/{os.getpid()}.xml"


def test_answerfile_from_path_file_url_and_http(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(ANSWERS)
    with ReleaseServer(tmp_path) as srv:
        for location in (str(tmp_path / "a.xml"), f"file://{tmp_path}/a.xml", f"{srv.url}/a.xml"):
            parsed = sources.parse_loaded(sources.load_answerfile(location))
            assert parsed.answers.hostname == "rack1-h07"
            assert parsed.answers.root_password_hash.startswith("$6$")


def test_unreadable_sources_are_refusals(tmp_path: Path) -> None:
    with ReleaseServer(tmp_path) as srv:
        with pytest.raises(sources.SourceError, match="HTTP 404") as err:
            sources.load_answerfile(f"{srv.url}/missing.xml")
        assert err.value.exit_code == 2
    with pytest.raises(sources.SourceError, match="No such file"):
        sources.load_answerfile(str(tmp_path / "nope.xml"))
    with pytest.raises(sources.SourceError, match="unsupported scheme"):
        sources.load_answerfile("gopher://x/a.xml")


def test_generator_output_is_the_answer_file(tmp_path: Path) -> None:
    (tmp_path / "gen").write_text("#!/bin/sh\ncat <<'XML'\n" + ANSWERS.decode() + "XML\n")
    (tmp_path / "noshebang").write_text("echo hi\n")
    with ReleaseServer(tmp_path) as srv:
        parsed = sources.parse_loaded(sources.run_generator(f"{srv.url}/gen"))
        assert parsed.answers.timezone == "Europe/Paris"
        with pytest.raises(sources.SourceError, match="#!"):
            sources.run_generator(f"{srv.url}/noshebang")


def test_invalid_answer_file_names_the_source(tmp_path: Path) -> None:
    (tmp_path / "bad.xml").write_bytes(b"<installation><primary-disk>sda</primary-disk>")
    with pytest.raises(AnswerFileError) as err:
        sources.parse_loaded(sources.load_answerfile(str(tmp_path / "bad.xml")))
    assert "bad.xml" in str(err.value)
