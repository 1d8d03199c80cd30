"""Secure Boot on in the firmware: refused before anything runs, in every mode and front-end.

The firmware is stood in for by efivars files in a temporary directory (``EFI_FIRMWARE`` pointed
at it); the disks are real loop devices whose bytes are hashed before and after. No machine was
booted with Secure Boot for these tests: they prove the reading and the refusal, not the boot
chain (see docs/firmware.md).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.loopdisk import GIB, content_hash, loop_image, sparse_image
from support.release_server import ReleaseServer

from answerfiles.parse import parse_answerfile
from common import runner
from common.errors import CommandForbiddenError
from installer import bootmode, install, modes
from installer.bootmode import SECURE_BOOT_VAR, SecureBootError, refuse_secure_boot, secure_boot
from installer.cli.main import main
from installer.discovery import Disk, Hardware, Nic
from installer.plan import BootMode
from installer.progress import HttpReporter
from installer.tui.app import Wizard, install_backend, new_context

ATTRS = b"\x06\x00\x00\x00"  # BOOTSERVICE_ACCESS | RUNTIME_ACCESS, as firmware sets them
SENTENCE = "Secure Boot is on in this host's firmware"
ANSWERS = """<?xml version="1.0"?>
<installation xmlns:xp="urn:xcp-provision:answerfile:1">
  <primary-disk>sda</primary-disk>
  <source type="url">{url}/release</source>
  <admin-interface name="eth0" proto="dhcp"/>
  <xp:server-url>{url}</xp:server-url>
  <xp:token>sb-token</xp:token>
</installation>
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


def firmware(tmp_path: Path, value: bytes | None, *, others: bool = True) -> Path:
    """A fake ``/sys/firmware/efi`` with efivarfs mounted; ``value`` None leaves SecureBoot out."""
    efivars = tmp_path / "efi" / "efivars"
    efivars.mkdir(parents=True)
    if others:
        (efivars / "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(ATTRS + b"\0\0")
    if value is not None:
        (efivars / SECURE_BOOT_VAR).write_bytes(value)
    return tmp_path / "efi"


def forbid_all(argv: list[str]) -> None:
    raise CommandForbiddenError(argv)


def only_reads(argv: list[str]) -> None:
    if (Path(argv[0]).name, argv[1] if len(argv) > 1 else "") not in {
        ("sfdisk", "--json"), ("wipefs", "--json"), ("blkid", "--probe"), ("udevadm", "settle"),
    }:
        raise CommandForbiddenError(argv)


# --- the reader ---------------------------------------------------------------------------


def test_on_off_and_absent_on_efivarfs(tmp_path: Path) -> None:
    assert secure_boot(firmware(tmp_path / "on", ATTRS + b"\x01")) is True
    assert secure_boot(firmware(tmp_path / "off", ATTRS + b"\x00")) is False
    # Firmware older than UEFI 2.3.1 has no SecureBoot variable and no Secure Boot.
    assert secure_boot(firmware(tmp_path / "old", None)) is False
    assert secure_boot(tmp_path / "bios") is False


def test_the_sysfs_interface_of_older_kernels(tmp_path: Path) -> None:
    for value, expected in ((b"\x01", True), (b"\x00", False)):
        data = tmp_path / expected.__repr__() / "efi" / "vars" / SECURE_BOOT_VAR / "data"
        data.parent.mkdir(parents=True)
        data.write_bytes(value)
        assert secure_boot(data.parents[2]) is expected


@pytest.mark.parametrize("content", [b"", ATTRS, ATTRS + b"\x02", ATTRS + b"\x01\x00"],
                         ids=["empty", "attributes-only", "value-2", "two-bytes"])
def test_malformed_is_unknown_logged_and_let_through(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fake = firmware(tmp_path, content)
    with caplog.at_level(logging.WARNING, logger="installer.bootmode"):
        assert secure_boot(fake) is None
        refuse_secure_boot(fake)
    assert "Secure Boot state unknown" in caplog.text


def test_efivarfs_not_mounted_is_unknown(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    fake = firmware(tmp_path, None, others=False)
    with caplog.at_level(logging.WARNING, logger="installer.bootmode"):
        assert secure_boot(fake) is None
    assert "is efivarfs mounted?" in caplog.text


def test_unreadable_variable_is_unknown(tmp_path: Path) -> None:
    fake = firmware(tmp_path, None)
    (fake / "efivars" / SECURE_BOOT_VAR).mkdir()  # reading it raises IsADirectoryError
    assert secure_boot(fake) is None


def test_the_refusal_is_one_sentence_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SecureBootError) as err:
        refuse_secure_boot(firmware(tmp_path, ATTRS + b"\x01"))
    text = str(err.value)
    assert err.value.exit_code == 2
    assert text.startswith(SENTENCE) and "\n" not in text and text.count(". ") == 0
    assert "turn Secure Boot off in the firmware setup" in text
    assert "legacy (BIOS) mode" in text and "nothing was written" in text


# --- the backends, the command line and the TUI ---------------------------------------------


@pytest.fixture
def secure_boot_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = firmware(tmp_path / "fw", ATTRS + b"\x01")
    monkeypatch.setattr(bootmode, "EFI_FIRMWARE", fake)
    return fake


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    image = tmp_path / "disk.img"
    with loop_image(image, 60 * GIB) as device:
        yield device, image


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReleaseServer]:
    top = tmp_path / "served"
    top.mkdir()
    with ReleaseServer(top) as srv:
        yield srv


@pytest.mark.root
@needs_root
@pytest.mark.usefixtures("secure_boot_on")
@pytest.mark.parametrize("mode", [BootMode.UEFI, BootMode.BIOS])
def test_fresh_install_refuses_before_any_command_and_reports_it(
    disk: tuple[str, Path], server: ReleaseServer, mode: BootMode
) -> None:
    device, image = disk
    answers = parse_answerfile(ANSWERS.format(url=server.url), "sb.xml").answers
    before = content_hash(image)
    with runner.guarded(forbid_all), pytest.raises(SecureBootError):
        install.install(answers, target=device, boot_mode=mode, installer_disk=(),
                        reporters=(HttpReporter(server.url, "sb-token"),))
    assert content_hash(image) == before
    failed = [p for p in server.posts if p.path == "/api/v1/installs/failed"]
    assert len(failed) == 1 and failed[0].authorization == "Bearer sb-token"
    assert failed[0].body["reason"].startswith(SENTENCE)


@pytest.mark.root
@needs_root
def test_with_secure_boot_off_the_install_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk: tuple[str, Path]
) -> None:
    monkeypatch.setattr(bootmode, "EFI_FIRMWARE", firmware(tmp_path / "fw", ATTRS + b"\x00"))
    answers = parse_answerfile(ANSWERS.format(url="http://127.0.0.1:9"), "sb.xml").answers
    with runner.guarded(forbid_all), pytest.raises(CommandForbiddenError):
        install.install(answers, target=disk[0], boot_mode=BootMode.UEFI, installer_disk=())


@pytest.mark.root
@needs_root
@pytest.mark.usefixtures("secure_boot_on")
def test_upgrade_and_restore_refuse_and_report(
    disk: tuple[str, Path], server: ReleaseServer
) -> None:
    device, image = disk
    before = content_hash(image)
    upgrade = parse_answerfile(
        '<installation mode="upgrade"><existing-installation>sda</existing-installation>'
        f'<source type="url">{server.url}/release</source></installation>', "up.xml").answers
    restore = parse_answerfile("<restore/>", "restore.xml").answers
    reporters = (HttpReporter(server.url, "sb-token"),)
    with runner.guarded(forbid_all), pytest.raises(SecureBootError):
        modes.upgrade(upgrade, target=device, boot_mode=BootMode.UEFI, reporters=reporters)
    # Restore reads the named disk's table before it reports anything; it writes nothing.
    with runner.guarded(only_reads), pytest.raises(SecureBootError):
        modes.restore(restore, target=device, boot_mode=BootMode.UEFI, reporters=reporters)
    assert content_hash(image) == before
    reasons = [p.body["reason"] for p in server.posts if p.path == "/api/v1/installs/failed"]
    assert len(reasons) == 2 and all(r.startswith(SENTENCE) for r in reasons)


@pytest.mark.root
@needs_root
@pytest.mark.usefixtures("secure_boot_on")
def test_cli_exits_2_with_the_sentence_and_the_server_hears_it(
    tmp_path: Path, disk: tuple[str, Path], server: ReleaseServer
) -> None:
    device, image = disk
    answerfile = tmp_path / "sb.xml"
    answerfile.write_text(ANSWERS.format(url=server.url))
    before = content_hash(image)
    with runner.guarded(forbid_all):
        result = CliRunner().invoke(
            main, ["--answerfile", str(answerfile), "--target-disk", device], catch_exceptions=False
        )
    assert result.exit_code == 2, result.output
    refusal = [line for line in result.output.splitlines() if line.startswith("refused:")]
    assert refusal == [f"refused: {SecureBootError()}"]
    assert content_hash(image) == before
    failed = [p for p in server.posts if p.path == "/api/v1/installs/failed"]
    assert [p.body["reason"] for p in failed] == [str(SecureBootError())]


@pytest.mark.root
@needs_root
@pytest.mark.usefixtures("secure_boot_on")
def test_an_image_file_is_not_judged_by_this_machines_firmware(tmp_path: Path) -> None:
    """An image boots on another machine's firmware: the next refusal is the image's own."""
    image = sparse_image(tmp_path / "small.img", 40 * GIB)
    answerfile = tmp_path / "sb.xml"
    answerfile.write_text(  # no server: a report to a dead one is retried for minutes
        "<installation><primary-disk>sda</primary-disk>"
        '<source type="url">http://127.0.0.1:9/r</source>'
        '<admin-interface name="eth0" proto="dhcp"/></installation>')
    with runner.guarded(lambda argv: None if Path(argv[0]).name in ("losetup", "partx")
                        else only_reads(argv)):
        result = CliRunner().invoke(
            main, ["--answerfile", str(answerfile), "--target-disk", str(image),
                   "--boot-mode", "uefi"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "too small" in result.output and SENTENCE not in result.output


@pytest.mark.root
@needs_root
@pytest.mark.usefixtures("secure_boot_on")
def test_the_tui_shows_the_sentence_and_exits_2(disk: tuple[str, Path]) -> None:
    device, image = disk
    hw = Hardware((Disk("loop", device, 60 * GIB),), (Nic("eth0", None, "virtio_net", True, None),))
    w = Wizard(new_context(hw, memory_bytes=8 * GIB, virtualisation=True), install_backend)
    w.ctx.draft.root_password_hash = None
    w.ctx.draft.source_url = "http://127.0.0.1:9/r/"
    before = content_hash(image)
    with runner.guarded(forbid_all):
        w._start_install()
        for thread in threading.enumerate():
            if thread.name == "install":
                thread.join(60)
    assert w.phase == "done" and w.exit_code == 2
    assert SENTENCE in " ".join(w.text().split())
    assert content_hash(image) == before

