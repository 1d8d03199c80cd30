"""Screen-level tests of the interactive installer: keys in, rendered text and answers out."""

from __future__ import annotations

import urwid

from answerfiles.model import Mode, NtpSource, Proto
from answerfiles.parse import parse_answerfile
from installer.discovery import Disk, DiskPartition, Hardware, Nic
from installer.plan import GPT_BIOS_BOOT
from installer.tui.app import Wizard, new_context

SIZE = (80, 24)
GIB = 1 << 30


def hardware(*, installed: bool = False) -> Hardware:
    parts = (
        DiskPartition(1, "/dev/sda1", 2048, 18 * GIB, "0700", "", "ext3", "root-abcdef"),
        DiskPartition(4, "/dev/sda4", 4096, 512 << 20, GPT_BIOS_BOOT, "boot"),
    ) if installed else ()
    disks = (
        Disk("sda", "/dev/sda", 100 * GIB, vendor="ATA", model="QEMU HARDDISK",
             serial="QM0001", bus="ata", partitions=parts),
        Disk("sdb", "/dev/sdb", 64 * GIB, vendor="SanDisk", model="Ultra", serial="USB42",
             removable=True, bus="usb"),
    )
    nics = (Nic("eth0", "52:54:00:12:34:56", "virtio_net", True, 1000),
            Nic("eth1", "52:54:00:12:34:57", "e1000", False, None))
    return Hardware(disks, nics)


class Recorder:
    """A backend stand-in for screen tests: records the answers and replays progress events."""

    def __init__(self, fail: str | None = None) -> None:
        self.answers = None
        self.fail = fail

    def __call__(self, answers, ctx, on_event) -> None:
        self.answers = answers
        on_event("Partitioning", 10, "wrote GPT on /dev/sda")
        on_event("Installing dom0", 60, "root filesystem laid down")
        if self.fail:
            raise RuntimeError(self.fail)
        on_event("Done", 100, "")


def wizard(hw: Hardware | None = None, backend=None, memory: int = 8 * GIB) -> Wizard:
    ctx = new_context(hw or hardware(), memory_bytes=memory, virtualisation=True)
    return Wizard(ctx, backend or Recorder())


def press(w: Wizard, *keys: str) -> None:
    for key in keys:
        w.keypress(SIZE, key)


def type_text(w: Wizard, text: str) -> None:
    for ch in text:
        w.keypress(SIZE, ch)


def clear(w: Wizard, n: int = 40) -> None:
    press(w, *["end"] + ["backspace"] * n)


def to_password(w: Wizard) -> None:
    press(w, "f12", "f12")  # keymap, welcome
    press(w, "down", "enter", "f12")  # licence: I accept
    assert w.screen.key == "action"
    press(w, "f12", "f12")  # install; primary disk sda
    assert w.screen.key == "guest-disks"
    press(w, "f12", "f12")  # no guest disks; sr ext
    assert w.screen.key == "source"
    type_text(w, "http://10.0.0.1/releases/r1/")
    press(w, "f12")
    assert w.screen.key == "password"


def test_first_screen_fits_80x24_and_shows_keys():
    w = wizard()
    text = w.text()
    assert "Select Keymap" in text
    assert "F12 next" in text
    assert len(text.splitlines()) == 24
    assert all(len(line) <= 80 for line in text.splitlines())


def test_licence_must_be_accepted():
    w = wizard()
    press(w, "f12", "f12")
    assert w.screen.key == "licence"
    press(w, "f12")
    assert w.screen.key == "licence"
    assert "select 'I accept'" in w.text()


def test_back_returns_to_the_previous_screen_with_answers_kept():
    w = wizard()
    press(w, "down", "enter", "f12")  # keymap uk
    assert w.ctx.draft.keymap == "uk"
    press(w, "esc")
    assert w.screen.key == "keymap"
    assert "(X) uk" in w.text()


def test_action_offers_only_install_without_an_existing_installation():
    w = wizard()
    press(w, "f12", "f12", "down", "enter", "f12")
    assert w.screen.key == "action"
    assert "Upgrade the existing" not in w.text()
    w2 = wizard(hardware(installed=True))
    press(w2, "f12", "f12", "down", "enter", "f12")
    assert "Upgrade the existing installation" in w2.text()
    assert "Restore" not in w2.text()  # no backup partition with the marker
    w3 = wizard(hardware(installed=True))
    w3.ctx.restorable = frozenset({"/dev/sda"})
    press(w3, "f12", "f12", "down", "enter", "f12", "down", "down", "enter", "f12")
    assert w3.ctx.draft.mode is Mode.RESTORE
    assert "sda " in w3.text() and "sdb" not in w3.text()


def test_primary_disk_lists_disks_marks_usb_and_f5_shows_details():
    w = wizard()
    press(w, "f12", "f12", "down", "enter", "f12", "f12")
    assert w.screen.key == "primary-disk"
    text = w.text()
    assert "sda" in text and "100 GiB" in text
    assert "[REMOVABLE/USB]" in text
    press(w, "down")  # cursor on sdb
    press(w, "f5")
    detail = w.text()
    assert "Serial: USB42" in detail and "Bus: usb" in detail
    assert "WARNING: removable or USB disk" in detail
    press(w, "esc")
    assert w.screen.key == "primary-disk"


def test_overlays_let_keys_through_urwids_own_loop():
    """Calling ``keypress`` directly skips the loop's own rule (keys go only to a selectable
    top widget) that froze the installer behind F1 and F5; ``process_input`` applies it."""
    w = wizard()
    loop = urwid.MainLoop(w)
    loop.screen_size = SIZE
    loop.process_input(["f1"])
    assert w.overlay_open
    loop.process_input(["esc"])
    assert not w.overlay_open
    loop.process_input(["f12", "f12", "down", "enter", "f12", "f12", "f5"])
    assert w.screen.key == "primary-disk" and "Serial: QM0001" in w.text()
    loop.process_input(["enter", "f12"])
    assert not w.overlay_open and w.screen.key != "primary-disk"


def test_too_small_disk_is_refused_on_screen():
    hw = Hardware((Disk("sda", "/dev/sda", 20 * GIB, model="small"),), hardware().nics)
    w = wizard(hw)
    press(w, "f12", "f12", "down", "enter", "f12", "f12", "f12")
    assert w.screen.key == "primary-disk"
    assert "needs at least 46 GiB" in w.text()


def test_source_must_be_a_url_the_backend_can_fetch():
    w = wizard()
    press(w, "f12", "f12", "down", "enter", "f12", "f12", "f12", "f12", "f12")
    assert w.screen.key == "source"
    type_text(w, "nfs://server/releases/r1")
    press(w, "f12")
    assert w.screen.key == "source"
    assert "is not an http, https or file URL" in w.text()


def test_passwords_that_differ_or_are_short_are_refused():
    w = wizard()
    to_password(w)
    type_text(w, "secret1")
    press(w, "down")
    type_text(w, "secret2")
    press(w, "f12")
    assert "the two passwords differ" in w.text()
    assert w.screen.key == "password"
    assert "secret" not in w.text()  # masked


def test_invalid_network_entries_are_refused_with_the_reason():
    w = wizard()
    to_password(w)
    type_text(w, "s3cret!")
    press(w, "down")
    type_text(w, "s3cret!")
    press(w, "f12")
    assert w.screen.key == "nic"
    assert "52:54:00:12:34:57" in w.text()
    press(w, "f12")
    assert w.screen.key == "network"
    press(w, "down", "enter")  # static
    press(w, "down")
    type_text(w, "10.0.0.300")
    press(w, "down")
    type_text(w, "255.255.255.0")
    press(w, "down")
    type_text(w, "10.0.0.1")
    press(w, "down")
    type_text(w, "5000")
    press(w, "f12")
    text = w.text()
    assert w.screen.key == "network"
    assert "10.0.0.300" in text and "not an IPv4 address" in text
    assert "out of range" in text


def test_a_whole_install_fills_the_answers_and_saves_an_answer_file(tmp_path):
    backend = Recorder()
    w = wizard(backend=backend)
    to_password(w)
    type_text(w, "s3cret!")
    press(w, "down")
    type_text(w, "s3cret!")
    press(w, "f12", "f12")  # password, nic eth0
    press(w, "down", "enter", "down")  # static
    type_text(w, "10.0.0.5")
    press(w, "down")
    type_text(w, "255.255.255.0")
    press(w, "down")
    type_text(w, "10.0.0.1")
    press(w, "down")
    type_text(w, "20")
    press(w, "f12")
    assert w.screen.key == "hostname"
    clear(w)
    type_text(w, "xen1.example.com")
    press(w, "down")
    type_text(w, "10.0.0.53")
    press(w, "f12")
    assert w.screen.key == "tz-region"
    press(w, "f12", "f12")  # Etc region is not first: keep whatever is selected
    assert w.screen.key == "ntp"
    press(w, "down", "down", "enter", "down", "down")  # manual, then the servers entry
    type_text(w, "ntp1.example.com")
    press(w, "f12")
    assert w.screen.key == "confirm"
    text = w.text()
    assert "These disks will be ERASED:" in text
    assert "/dev/sda: QEMU HARDDISK, serial QM0001, 100 GiB" in text
    saved = tmp_path / "answers.xml"
    type_text(w, str(saved))
    press(w, "f12")
    assert w.phase == "done"
    assert "Installation complete" in w.text()

    answers = backend.answers
    assert answers.mode is Mode.FRESH
    assert answers.primary_disk.disk == "/dev/sda"
    iface = answers.admin_interface
    assert (iface.name, iface.proto, iface.ipaddr, iface.vlan) == (
        "eth0", Proto.STATIC, "10.0.0.5", 20)
    assert answers.hostname == "xen1.example.com"
    assert answers.name_servers == ("10.0.0.53",)
    assert answers.ntp.source is NtpSource.MANUAL
    assert answers.root_password_hash.startswith("$6$")
    assert parse_answerfile(saved.read_text()).answers == answers


def test_a_failed_install_shows_the_reason_and_exits_1():
    w = wizard(backend=Recorder(fail="sha256 mismatch on dom0.tar.zst"))
    w.ctx.draft.root_password_hash = None
    w.ctx.draft.source_url = "http://10.0.0.1/r/"
    w._start_install()
    assert w.phase == "done"
    assert w.exit_code == 1
    assert "sha256 mismatch on dom0.tar.zst" in w.text()
    try:
        press(w, "enter")
    except urwid.ExitMainLoop:
        pass
    else:
        raise AssertionError("Enter on the outcome screen must leave the loop")
