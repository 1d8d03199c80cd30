"""The boot path of each host, from its DHCP requests, as one ``boot`` event per boot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dhcp_proxy import http_discover, pxe_packet

from pxe.config import Settings
from pxe.db.session import Database
from pxe.dhcp import options as opt
from pxe.dhcp.bootpath import BootPath, BootPathRecorder, classify
from pxe.dhcp.packet import DhcpPacket
from pxe.store.events import list_events
from pxe.store.hosts import add_host, find_host

DATA = Path(__file__).parent / "data" / "dhcp"
MAC = "52:54:00:12:34:56"


@pytest.mark.parametrize(("capture", "path"), [
    ("uefi-discover.bin", BootPath.UEFI_PXE),  # OVMF's own PXE client
    ("uefi-discover-ipxe.bin", BootPath.IPXE),  # the snponly.efi it loaded
    ("bios-discover-ipxe.bin", BootPath.IPXE),  # SeaBIOS with iPXE as the NIC's ROM
    ("uefi-offer-from-site.bin", None),  # dnsmasq's answer: no client at all
])
def test_real_requests_classified(capture, path):
    assert classify(DhcpPacket.decode((DATA / capture).read_bytes()).options) == path


def test_built_requests_classified():
    assert classify(http_discover(1).options) == BootPath.UEFI_HTTP
    assert classify(pxe_packet(opt.DISCOVER, 0, xid=1).options) == BootPath.BIOS_PXE
    assert classify(pxe_packet(opt.DISCOVER, 11, xid=1).options) == BootPath.UEFI_PXE
    assert classify(pxe_packet(opt.DISCOVER, None, xid=1, vendor=b"MSFT 5.0").options) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(Settings(data_dir=tmp_path).database)
    database.migrate()
    yield database
    database.dispose()


def boots(database: Database, mac: str) -> list[tuple[str, str]]:
    with database.scope(write=False) as session:
        host = find_host(session, mac=mac)
        return [(e.step, e.message) for e in list_events(session, host=host, kind="boot")]


def wait_for(condition, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def request(packet: DhcpPacket) -> tuple[dict[int, bytes], int]:
    """What ProxyDHCP tells the recorder of a request it answered, beside the MAC."""
    return packet.options, packet.xid


def test_one_event_per_boot_and_a_late_host_still_gets_its_event(database):
    with database.scope() as session:
        add_host(session, macs=[MAC])
    clock = Clock()
    recorder = BootPathRecorder(database, clock=clock, same_boot_seconds=180)
    recorder.start()
    try:
        recorder.note(MAC, *request(http_discover(1)))
        clock.now += 20  # the iPXE that HTTP Boot loaded asks too: the same boot
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 7, xid=2, ipxe=True)))
        wait_for(lambda: recorder.written == 1)
        [(step, message)] = boots(database, MAC)
        assert step == "UEFI HTTP"
        assert "'HTTPClient:Arch:00016:UNDI:003001', architecture 16" in message
        clock.now += 600  # a later boot, by the NIC's own iPXE this time
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 0, xid=3, ipxe=True)))
        wait_for(lambda: recorder.written == 2)
        assert [step for step, _ in boots(database, MAC)] == ["UEFI HTTP", "iPXE"]
        # Installed and powered on again through the BMC well within the window: the firmware
        # asking after the boot's iPXE is a new boot; its retransmission and iPXE are not.
        clock.now += 150
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 11, xid=5)))
        clock.now += 4
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 11, xid=5)))
        clock.now += 18
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 7, xid=6, ipxe=True)))
        wait_for(lambda: recorder.written == 3)
        time.sleep(0.5)  # room for a wrong fourth event to be written
        assert [step for step, _ in boots(database, MAC)] == ["UEFI HTTP", "iPXE", "UEFI PXE"]
        # Soon again, by the NIC's own iPXE: another exchange (a new transaction ID) is a new
        # boot; that exchange's retransmitted DISCOVER is not.
        clock.now += 120
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 0, xid=7, ipxe=True)))
        clock.now += 1
        recorder.note(MAC, *request(pxe_packet(opt.DISCOVER, 0, xid=7, ipxe=True)))
        wait_for(lambda: recorder.written == 4)
        time.sleep(0.5)
        assert [step for step, _ in boots(database, MAC)] == [
            "UEFI HTTP", "iPXE", "UEFI PXE", "iPXE"
        ]

        late = "52:54:00:00:00:99"  # not in the inventory until its iPXE asks /boot/ipxe
        recorder.note(late, *request(pxe_packet(opt.DISCOVER, 0, xid=4)))
        recorder.note("52:54:00:00:00:98", {opt.VENDOR_CLASS: b"udhcp 1.36"}, 7)  # not booting
        time.sleep(0.5)
        with database.scope() as session:
            add_host(session, macs=[late])
        wait_for(lambda: recorder.written == 5)
        assert [step for step, _ in boots(database, late)] == ["BIOS PXE"]
    finally:
        recorder.stop()
