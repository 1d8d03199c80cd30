"""The lab's verdict as people and programs read it: summary.txt and report.json."""

from __future__ import annotations

import json
from pathlib import Path

from lab.harness import Check, LabReport
from lab.timeline import Stage, Timeline


def _report(tmp_path: Path) -> LabReport:
    done = Timeline("lab-vm1", "bios")
    for second, stage in enumerate(Stage, start=1):
        done.mark(stage, second * 10.0, f"line {stage.value}")
    broken = Timeline("lab-vm2", "uefi")
    broken.mark(Stage.DHCP, 21.0, "Station IP address is 10.99.0.130")
    broken.fatal = "No bootable device. (at 95 s)"
    return LabReport(
        tmp_path,
        ok=False,
        failed_step="loader (lab-vm2)",
        checks=[
            Check("lab-vm1 in pool", True, "server state in-pool"),
            Check("lab-vm2 in pool", False, "server state ready"),
        ],
        timelines=[done, broken],
    )


def test_summary_names_the_failed_step_and_every_check(tmp_path: Path) -> None:
    text = _report(tmp_path).summary()
    assert "[ok] lab-vm1 in pool: server state in-pool" in text
    assert "[FAIL] lab-vm2 in pool: server state ready" in text
    assert text.rstrip().endswith(f"lab: FAIL at loader (lab-vm2) (results in {tmp_path})")
    row = next(line for line in text.splitlines() if line.startswith("lab-vm2"))
    assert row.split()[2:4] == ["21.0", "-"]


def test_json_says_where_each_vm_stopped(tmp_path: Path) -> None:
    data = json.loads(_report(tmp_path).to_json())
    first, second = data["timelines"]
    assert first["stopped_before"] is None
    assert first["seen"]["in-pool"] == 90.0
    assert second["stopped_before"] == "loader"
    assert second["fatal"] == "No bootable device. (at 95 s)"
    assert second["evidence"] == {"dhcp": "Station IP address is 10.99.0.130"}
    assert data["ok"] is False
