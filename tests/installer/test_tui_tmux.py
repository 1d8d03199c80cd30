"""The TUI in a real 80x24 terminal (tmux), driven key by key to a finished install on a disk image.

The release comes over real HTTP; afterwards the image is read back like the other install tests:
partition table, root file system, and the answer file the confirmation screen saved.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

from answerfiles.parse import parse_answerfile
from installer.block import loop
from installer.mounts import mounted

pytestmark = pytest.mark.root
GIB = 1 << 30
HELP = "─ Help ─"  # the overlays' frame titles
DETAILS = "─ Disk details ─"
XCP_INSTALL = Path(sys.executable).parent / "xcp-install"


class Terminal:
    """One tmux server of its own (``-L``), so tests never share or race a server."""

    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], check=True,
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def screen(self, *, styled: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if styled else []), "-t", self.name)

    def wait_for(self, *texts: str, timeout: float = 30) -> str:
        """The screen once any of ``texts`` shows on it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if any(text in shown for text in texts):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"none of {texts} appeared; the screen shows:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float = 10) -> str:
        """The screen once ``text`` no longer shows on it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text not in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} stayed on the screen:\n{self.screen()}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[[str], tuple[Terminal, Path, Path]]]:
    """Starts ``xcp-install --tui --target-image`` on a fresh 60 GiB sparse image in tmux."""
    assert shutil.which("tmux"), "tmux is not installed (make test installs it)"
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    status = tmp_path / "exit-status"
    name = f"tui-test-{os.getpid()}-{tmp_path.name}"
    term = Terminal(name)

    def start(term_type: str, *, path: str = "") -> tuple[Terminal, Path, Path]:
        # tmux sets TERM in its panes itself: the terminal type is chosen in the command.
        env = f"TERM={term_type}" + (f" PATH={path}:{os.environ['PATH']}" if path else "")
        command = (f"env {env} {XCP_INSTALL} --tui --target-image {image}; "
                   f"echo $? > {status}; sleep 600")
        term.tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
        return term, image, status

    try:
        yield start
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], check=False, capture_output=True)
        # The hung-up installer detaches its own device: racing it would fail the teardown.
        for line in wait_detached(image):
            loop.detach(line)


def loop_lines(image: Path) -> list[str]:
    """Loop devices still attached to ``image`` (a killed installer cannot detach its own)."""
    out = subprocess.run(["losetup", "-j", str(image), "-O", "NAME", "-n"], check=False,
                         capture_output=True, text=True).stdout
    return out.split()


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


def wait_exit(status: Path) -> str:
    deadline = time.monotonic() + 30
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return status.read_text().strip()


def test_tui_installs_onto_a_disk_image_in_80x24(terminal, tmp_path: Path):
    term, image, status = terminal("xterm")
    top = tmp_path / "served"
    small_release.build(top / "release")
    saved = tmp_path / "answers.xml"
    with ReleaseServer(top) as srv:
        term.wait_for("Select Keymap")
        term.keys("F12")
        term.wait_for("Welcome to xcp-provision")
        term.keys("F12")
        term.wait_for("I accept")
        term.keys("Down", "Enter", "F12")
        if "Hardware warning" in term.wait_for("Hardware warning", "What do you want to do?"):
            term.keys("F12")
        term.wait_for("What do you want to do?")
        term.keys("F12")
        shown = term.wait_for("Select the disk:")
        assert "loop" in shown and "60 GiB" in shown
        term.keys("F12")
        term.wait_for("Local storage repository type")
        term.keys("F12")
        term.wait_for("Where is the release?")
        term.type(f"{srv.url}/release/")
        term.keys("F12")
        term.wait_for("Root password")
        term.type("s3cret!")
        term.keys("Down")
        term.type("s3cret!")
        term.keys("F12")
        if "Select the management NIC" in term.wait_for("Select the management NIC",
                                                        "Automatic (DHCP)"):
            term.keys("F12")
        term.wait_for("Automatic (DHCP)")
        term.keys("F12")
        term.wait_for("Host name")
        term.keys("End", *["BSpace"] * 30)
        term.type("tui-host.example.com")
        term.keys("F12")
        term.wait_for("Region:")
        term.keys("F12")
        term.wait_for("Time zone: city")
        term.keys("F12")
        term.wait_for("NTP:")
        term.keys("F12")
        confirm = term.wait_for("These disks will be ERASED:")
        assert "/dev/loop" in confirm
        term.type(str(saved))
        term.keys("F12")
        done = term.wait_for("Installation complete", "Installation failed", timeout=300)
        assert "Installation complete" in done, done
        # A path longer than the screen's 76 columns of text wraps, mid-word.
        assert str(saved) in "".join(line.strip() for line in done.splitlines()), done
        term.keys("Enter")
        assert wait_exit(status) == "0"
        assert loop_lines(image) == []

    answers = parse_answerfile(saved.read_text()).answers
    assert answers.hostname == "tui-host.example.com"
    assert answers.primary_disk.disk.startswith("/dev/loop")

    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    assert len(table["partitions"]) == 6
    with loop.attached(str(image)) as device:
        labels = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", f"{device}p1"],
                                check=True, capture_output=True, text=True).stdout.strip()
        assert labels.startswith("root-")
        with mounted(f"{device}p1") as root:
            assert (Path(root) / "etc/hostname").read_text() == "tui-host.example.com\n"
            assert (Path(root) / "etc/shadow").read_text().startswith("root:$6$")
            assert (Path(root) / "boot/grub/grub.cfg").is_file()


def test_plain_mode_for_serial_consoles_has_no_colour_and_quitting_writes_nothing(terminal):
    term, image, status = terminal("vt220")
    term.wait_for("Select Keymap")
    styled = term.screen(styled=True)
    colours = {code for codes in re.findall(r"\x1b\[([0-9;]*)m", styled)
               for code in codes.split(";") if code}
    assert colours <= {"0", "7", "27"}, f"colour codes on a plain console: {colours}"
    term.keys("F10")
    assert wait_exit(status) == "2"
    assert image.stat().st_blocks == 0  # still an untouched sparse file
    assert loop_lines(image) == []


def installer_pid(term: Terminal) -> int:
    """The installer's own process: the pane runs a shell whose child it is."""
    shell = term.tmux("list-panes", "-t", term.name, "-F", "#{pane_pid}").split()[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("the installer process never started")


def wait_detached(image: Path, timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while loop_lines(image) and time.monotonic() < deadline:
        time.sleep(0.1)
    return loop_lines(image)


def test_overlays_close_and_the_installer_keeps_taking_keys(terminal):
    """F1 and F5 used to freeze the installer for good: urwid's loop hands keys only to a
    selectable widget, and an overlay of plain text is not one. Only a real loop shows it."""
    term, image, status = terminal("xterm")
    term.wait_for("Select Keymap")
    term.keys("F1")
    term.wait_for(HELP)
    term.keys("Escape")
    assert "Select Keymap" in term.wait_gone(HELP)
    term.keys("F12")
    term.wait_for("Welcome to xcp-provision")
    term.keys("F12")
    term.wait_for("I accept")
    term.keys("Down", "Enter", "F12")
    if "Hardware warning" in term.wait_for("Hardware warning", "What do you want to do?"):
        term.keys("F12")
    term.wait_for("What do you want to do?")
    term.keys("F12")
    term.wait_for("Select the disk:")
    term.keys("F5")
    shown = term.wait_for(DETAILS)
    assert "/dev/loop" in shown and "Select the disk:" not in shown
    term.keys("Escape")
    assert "Select the disk:" in term.wait_gone(DETAILS)
    term.keys("F1")
    term.wait_for(HELP)
    term.keys("Enter")
    assert "Select the disk:" in term.wait_gone(HELP)
    term.keys("F12")
    term.wait_for("Local storage repository type")
    term.keys("Escape")
    term.wait_for("Select the disk:")
    term.keys("F10")
    assert wait_exit(status) == "2"
    assert loop_lines(image) == []


SLOW_DETACH = """#!/bin/sh
# losetup, but a detach first says it started and then takes its time.
case " $* " in *" --detach "*) touch {marker}; sleep 2;; esac
exec {losetup} "$@"
"""


def slow_detach(tmp_path: Path) -> tuple[str, Path]:
    """A directory for the front of PATH whose ``losetup`` holds every detach open for two
    seconds, and the file that shows a detach has begun.

    A detach takes a few milliseconds: a hang-up landing in it is a race a test would win or
    lose by luck. Held open, it lands there every time, before and after the fix alike.
    """
    shims = tmp_path / "bin"
    shims.mkdir()
    marker = tmp_path / "detaching"
    (shims / "losetup").write_text(SLOW_DETACH.format(marker=marker,
                                                      losetup=shutil.which("losetup")))
    (shims / "losetup").chmod(0o755)
    return str(shims), marker


def wait_file(path: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.exists()


def test_hanging_up_the_terminal_detaches_the_image(terminal):
    """Closing the console must not leave the image bound to a loop device: nothing would ever
    free it. Killing tmux hangs the terminal up for real: the input ends, the shell that leads
    the session gets SIGHUP, and its death sends SIGHUP to the whole foreground process group,
    the ``losetup`` the installer may be running at that moment included. Whether that lands
    in the detach is down to timing here; the test below makes it certain."""
    term, image, _status = terminal("xterm")
    term.wait_for("Select Keymap")
    assert loop_lines(image), "the image should be attached while the installer runs"
    pid = installer_pid(term)
    term.tmux("kill-server")
    assert wait_detached(image) == []
    assert wait_gone(pid)


@pytest.mark.parametrize("first", ["F10", "SIGHUP"])
def test_a_hang_up_during_the_cleanup_still_detaches_the_image(terminal, tmp_path: Path, first):
    """A hang-up rarely comes alone (the shell's SIGHUP, the process group's, a SIGTERM from
    whoever closed the console), and one landing while the loop device was being detached used
    to abort the detach, or kill the ``losetup`` doing it."""
    path, marker = slow_detach(tmp_path)
    term, image, status = terminal("xterm", path=path)
    term.wait_for("Select Keymap")
    assert loop_lines(image), "the image should be attached while the installer runs"
    pid = installer_pid(term)
    if first == "F10":
        term.keys("F10")  # a quit in progress ...
    else:
        os.kill(pid, signal.SIGHUP)  # ... or the first of two hang-ups
    assert wait_file(marker), "the installer never started detaching the image"
    os.kill(pid, signal.SIGHUP)
    assert wait_detached(image) == []
    # The first reason to leave sets the status: a quit says nothing was written.
    assert wait_exit(status) == ("2" if first == "F10" else str(128 + signal.SIGHUP))
