"""The timeline reads real serial consoles (captured from this lab's own VMs) and server events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lab.timeline import (
    CHAIN,
    SerialWatcher,
    ServerEvent,
    Stage,
    Timeline,
    apply_events,
    clean,
    render_table,
    scan_text,
)

DATA = Path(__file__).parent / "data"


def test_bios_ipxe_rom_reaches_dhcp_and_loader() -> None:
    tl = Timeline("vm1", "bios")
    scan_text(tl, (DATA / "bios-pxe.serial.log").read_text(errors="replace"), 3.0)
    assert tl.seen == {Stage.DHCP: 3.0, Stage.LOADER: 3.0}
    assert "10.99.0" not in tl.evidence[Stage.DHCP]
    assert tl.evidence[Stage.LOADER].startswith("tftp://10.99.0.1/boot.ipxe")
    assert tl.first_missing() == Stage.BOOT_SCRIPT


def test_uefi_firmware_pxe_client_through_ovmf_screen_paint() -> None:
    text = (DATA / "uefi-pxe.serial.log").read_text(errors="replace")
    assert "\x1b[" in text
    tl = Timeline("vm2", "uefi")
    scan_text(tl, text, 7.5)
    assert tl.evidence[Stage.DHCP] == "Station IP address is 10.99.0.101"
    assert tl.evidence[Stage.LOADER] == "NBP file downloaded successfully."
    assert "\x1b" not in clean(text)


def test_linux_banner_before_xen_is_the_installer_after_it_is_dom0() -> None:
    tl = Timeline("vm", "bios")
    scan_text(tl, "o\x1bc[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@)\n", 22)
    scan_text(tl, "\x1bc(XEN) Xen version 4.17.7 (Debian 4.17.7+13-g2445b30a44-0+deb12u1)\n", 91)
    scan_text(tl, "[    0.000000] Linux version 6.1.0-56-amd64\n", 95)
    scan_text(tl, "[  OK  ] Started serial-getty@hvc0.service - Serial Getty on hvc0.\n", 100)
    scan_text(tl, "\nDebian GNU/Linux 12 lab-vm1 hvc0\n\n", 110)
    line = "lab-vm1 login: [   97.893453] python3[321]: xcp-provision-firstboot: registering\n"
    scan_text(tl, line, 120)
    assert tl.seen[Stage.INSTALLER] == 22
    assert tl.evidence[Stage.INSTALLER].startswith("o[    0.000000] Linux version")
    assert tl.seen[Stage.XEN] == 91
    assert tl.evidence[Stage.XEN].startswith("(XEN) Xen version 4.17.7")
    assert tl.seen[Stage.DOM0_LOGIN] == 120


def test_login_prompt_before_xen_does_not_count() -> None:
    tl = Timeline("vm", "bios")
    scan_text(tl, "installer login: \n", 10)
    assert not tl.reached(Stage.DOM0_LOGIN)


def test_watcher_stamps_a_prompt_without_newline(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"")
    tl = Timeline("vm", "bios")
    watcher = SerialWatcher(log, tl, time.monotonic(), poll=0.05).start()
    try:
        with open(log, "ab") as fh:
            fh.write(b"\x1b[0m(XEN) Xen version 4.17.5 (Debian)\r\n")
            fh.flush()
            fh.write(b"xcp1 log")
            fh.flush()
            time.sleep(0.3)
            fh.write(b"in: ")
            fh.flush()
        deadline = time.monotonic() + 5
        while not tl.reached(Stage.DOM0_LOGIN) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert tl.reached(Stage.XEN)
    assert tl.evidence[Stage.DOM0_LOGIN] == "xcp1 login:"


def test_server_events_are_seconds_since_power_on() -> None:
    """The events the server really records (captured from a lab run)."""
    on = datetime(2026, 11, 25, 17, 15, 0, tzinfo=UTC)
    events = [
        ServerEvent(on + timedelta(seconds=200), "pool-joined", message="pool lab as master"),
        ServerEvent(on + timedelta(seconds=200), "state", message="joined pool lab as master"),
        ServerEvent(on + timedelta(seconds=80), "done", message="build done"),
        ServerEvent(on + timedelta(seconds=30), "progress", step="laydown", message="writing"),
        ServerEvent(on, "state", message="added as ready"),
    ]
    tl = Timeline("vm", "bios")
    apply_events(tl, events, on)
    assert tl.seen == {Stage.INSTALL_DONE: 80, Stage.REGISTERED: 200, Stage.IN_POOL: 200}


def test_a_refused_host_registered_but_is_not_in_the_pool() -> None:
    on = datetime(2026, 11, 25, 17, 15, 0, tzinfo=UTC)
    tl = Timeline("vm", "bios")
    apply_events(
        tl,
        [ServerEvent(on + timedelta(seconds=9), "state", message="registered; no pool assigned")],
        on,
    )
    assert tl.seen == {Stage.REGISTERED: 9}


def test_table_has_a_column_per_stage_and_dashes_for_missing() -> None:
    tl = Timeline("lab-vm1", "uefi")
    tl.mark(Stage.DHCP, 12.34)
    lines = render_table([tl]).splitlines()
    assert lines[0].split() == ["vm", "firmware", *[s.value for s in CHAIN]]
    assert lines[1].split()[:4] == ["lab-vm1", "uefi", "12.3", "-"]


def test_a_failed_install_is_fatal_and_says_where() -> None:
    tl = Timeline("vm", "bios")
    scan_text(tl, "Linux version 6.1.0\nModuleNotFoundError: No module named 'rich'\n", 30)
    assert not tl.fatal
    scan_text(tl, "xcp-installer: the install failed: not rebooting into another install\n", 61)
    assert tl.fatal.startswith("xcp-installer: the install failed")
    assert tl.fatal.endswith("(at 61 s)")
