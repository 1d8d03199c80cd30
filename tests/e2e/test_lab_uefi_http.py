"""The whole chain by UEFI HTTP Boot: one OVMF VM with its PXE switched off, a server without TFTP.

The firmware gets its loader's URL from ProxyDHCP and fetches it over HTTP; the iPXE it loads
goes on as on every other path: installer, Xen, dom0, registration, pool. The server records the
boot as UEFI HTTP, and no TFTP server runs at any point.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.harness import LabOptions, run_lab
from lab.timeline import CHAIN, Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(7200)
def test_one_uefi_http_boot_vm_installs_boots_xen_and_joins_the_pool(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    report = run_lab(
        LabOptions(results=results, firmwares=("uefi-http",), timeout=2400), progress=print
    )
    print(report.summary())
    assert report.ok, report.summary()
    [timeline] = report.timelines
    assert timeline.firmware == "uefi-http"
    assert timeline.first_missing() is None
    boot = [s for s in CHAIN if s not in (Stage.REGISTERED, Stage.IN_POOL)]
    times = [timeline.seen[stage] for stage in boot]
    assert times == sorted(times), f"stages out of order: {timeline.seen}"
    [boot_path] = [c for c in report.checks if c.name == "lab-vm1 boot path"]
    assert boot_path.ok and boot_path.detail.startswith("recorded UEFI HTTP;"), boot_path

    serial = (results / "lab-vm1.serial.log").read_text(errors="replace")
    assert "Start HTTP Boot over IPv4" in serial
    assert "Start PXE over IPv4" not in serial  # the firmware's PXE was off: HTTP Boot only
    server_log = (results / "server.log").read_text()
    assert "URL http://" in server_log and "/loaders/snponly.efi" in server_log
    assert "GET /loaders/snponly.efi 200" in server_log
    assert "TFTP serving" not in server_log  # no TFTP service ever started
    assert "tftp sent" not in server_log
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
