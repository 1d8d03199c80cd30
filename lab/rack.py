"""The rack lab: every VM has a BMC (lab.bmc), and only the server's power API powers them.

Phase one: the harness adds each VM by MAC with the lab profile and registers its BMC through
the API (``PUT /api/v1/hosts/{ref}/bmc``), then asks ``POST /api/v1/hosts/{ref}/reinstall``
with ``{"power": true}``: next boot from the network, once, and power on, through the BMC.
The VMs install, boot Xen and dom0 and join the pool, as in the plain lab.

Phase two (``reinstall``): one rolling reinstall of the pool through the API
(``POST /api/v1/reinstalls``, ``max_parallel`` at a time). The server's roll driver power
cycles each VM through its BMC; every VM must network-boot again, install a second time and
rejoin, with the harness touching no VM in between. Each VM's second timeline counts from the
moment the roll started it. Meanwhile an operator's ``ipmitool sol activate`` runs on every
BMC, and must show the installed host's GRUB menu, Xen's banner and dom0's login prompt: the
serial-over-LAN view of a rack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypervisor.grub import MENU_TITLE
from lab import bmc as lab_bmc
from lab import qemu
from lab.api import LabApi
from lab.errors import LabError
from lab.harness import (
    EXPECTED_BOOT_PATH,
    POOL,
    PROCESS_MARGIN,
    SERVER_PATIENCE,
    Check,
    LabOptions,
    LabReport,
    LabRun,
    VmRun,
    _checks,
    _event,
    _failed_step,
    _wait,
    run_reported,
    start_lab,
)
from lab.timeline import (
    CHAIN,
    SerialWatcher,
    Stage,
    Timeline,
    apply_events,
    clean,
    render_table,
    scan_text,
    shifted,
    skip_existing,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0


@dataclass(frozen=True)
class RackOptions:
    lab: LabOptions
    reinstall: bool = False
    max_parallel: int = 2


@dataclass
class RackReport(LabReport):
    reinstall_timelines: list[Timeline] = field(default_factory=list)
    roll: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = ["install (seconds from the power-on request through the API):"]
        lines += [render_table(self.timelines), ""]
        if self.reinstall_timelines:
            lines.append("reinstall (seconds from the roll power cycling that VM):")
            lines += [render_table(self.reinstall_timelines), ""]
        lines += [f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        lines += [f"{name}: {value}" for name, value in self.figures.items()]
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(self.verdict("rack lab"))
        return "\n".join(lines)

    def to_json(self) -> str:
        data = json.loads(super().to_json())
        data["reinstall_timelines"] = [
            {
                "vm": t.vm,
                "firmware": t.firmware,
                "seen": {s.value: t.seen[s] for s in CHAIN if s in t.seen},
                "stopped_before": t.first_missing().value if t.first_missing() else None,
            }
            for t in self.reinstall_timelines
        ]
        data["roll"] = self.roll
        return json.dumps(data, indent=2) + "\n"


def mixed_firmwares(count: int) -> tuple[str, ...]:
    """Half BIOS (iPXE ROM), half UEFI (OVMF's own PXE); the odd one BIOS."""
    bios = (count + 1) // 2
    return ("bios",) * bios + ("uefi",) * (count - bios)


def run_rack(options: RackOptions, progress: Callable[[str], None] = print) -> RackReport:
    """Run the rack lab once; like :func:`lab.harness.run_lab`, it reports, never raises."""
    report = RackReport(options.lab.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress), progress
    )


@dataclass
class _Rack:
    """The running rack: the lab both phases act through, and a BMC per VM."""

    lab: LabRun
    bmcs: list[lab_bmc.LabBmc]


def _start(
    options: RackOptions,
    report: RackReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> _Rack:
    """The lab (release, network, site DHCP, server, inventory) and one BMC per VM; every VM
    off, its BMC registered through the API."""
    max_seconds = options.lab.timeout * (2 if options.reinstall else 1) + PROCESS_MARGIN
    lab = start_lab(options.lab, report, teardown, progress, max_seconds)
    bmcs = [lab_bmc.LabBmc(vm.spec, i) for i, vm in enumerate(lab.vms, start=1)]
    for vm, bmc in zip(lab.vms, bmcs, strict=True):
        qemu.create_disk(vm.spec)
        lab.net.add_tap(vm.spec.tap)
        for process in lab_bmc.start(bmc, lab.net, max_seconds):
            teardown.callback(process.stop)
        teardown.callback(lab_bmc.power_off, bmc)
        lab.api.call("PUT", f"/api/v1/hosts/{vm.host_id}/bmc", bmc.api_body())
    progress(f"BMCs: {len(bmcs)} ipmi_sim, registered through the API")
    return _Rack(lab, bmcs)


def _run(
    options: RackOptions,
    report: RackReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> None:
    rack = _start(options, report, teardown, progress)
    api, vms = rack.lab.api, rack.lab.vms
    started = time.monotonic()
    first = datetime.now(UTC)
    acknowledged = []
    for vm in vms:
        vm.powered_on = datetime.now(UTC)
        clock = time.monotonic()
        api.post(f"/api/v1/hosts/{vm.host_id}/reinstall", {"power": True})
        acknowledged.append(time.monotonic() - clock)
        vm.watcher = SerialWatcher(vm.spec.serial_log, vm.timeline, clock).start()
        teardown.callback(vm.watcher.stop)
        progress(f"{vm.spec.name}: power on asked through the API ({vm.timeline.firmware})")
    report.figures["power: reinstall with power acknowledged, slowest, seconds"] = round(
        max(acknowledged), 3
    )
    _wait(api, rack.lab.server, vms, options.lab.timeout, progress)
    report.figures.update(_status_latency(api, vms[0]))
    for vm in vms:
        assert vm.watcher is not None
        vm.watcher.read_once(final=True)
    report.checks = _checks(api, vms) + _bmc_checks(rack.bmcs, phase=1)
    report.checks += _seen_checks(api, vms, rack.bmcs)
    in_pool = [
        vm.powered_on.timestamp() + vm.timeline.seen[Stage.IN_POOL] - first.timestamp()
        for vm in vms
        if vm.powered_on and Stage.IN_POOL in vm.timeline.seen
    ]
    if len(in_pool) == len(vms):
        report.figures["install: all VMs in the pool, seconds from the first power-on"] = round(
            max(in_pool), 1
        )
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        report.failed_step = _failed_step(vms, report.checks)
        return
    progress(f"install phase: every VM in the pool after {time.monotonic() - started:.0f} s")
    if options.reinstall:
        _reinstall(options, report, rack)


def _reinstall(options: RackOptions, report: RackReport, rack: _Rack) -> None:
    asked = datetime.now(UTC)
    clock = time.monotonic()
    second = [
        VmRun(vm.spec, Timeline(vm.spec.name, vm.timeline.firmware), vm.host_id, asked)
        for vm in rack.lab.vms
    ]
    for vm in second:
        vm.watcher = skip_existing(SerialWatcher(vm.spec.serial_log, vm.timeline, clock)).start()
        rack.lab.teardown.callback(vm.watcher.stop)
    for vm, bmc in zip(rack.lab.vms, rack.bmcs, strict=True):  # as an operator: address as seen
        rack.lab.api.call("PUT", f"/api/v1/hosts/{vm.host_id}/bmc", bmc.api_body_as_seen())
    sols = [lab_bmc.watch_sol(bmc, rack.lab.net, rack.lab.max_seconds) for bmc in rack.bmcs]
    for sol in sols:
        rack.lab.teardown.callback(sol.stop)
    body = {"pool": POOL, "power": True, "max_parallel": options.max_parallel}
    roll = rack.lab.api.post("/api/v1/reinstalls", body)
    rack.lab.progress(
        f"roll {roll['id']}: {len(roll['waiting'])} VMs, {options.max_parallel} at a time"
    )
    roll = _wait_roll(rack, second, roll["id"], asked, options.lab.timeout)
    for vm in second:
        assert vm.watcher is not None
        vm.watcher.read_once(final=True)
    for sol in sols:
        sol.stop()
    report.roll = roll
    starts = {h["hostname"]: h["started_at"] for h in roll.get("hosts", [])}
    report.reinstall_timelines = [
        shifted(vm.timeline, _seconds(starts.get(vm.spec.name), asked)) for vm in second
    ]
    checks = _phase_two_checks(second, roll, options.max_parallel)
    checks += _bmc_checks(rack.bmcs, phase=2)
    checks += [_sol_check(bmc) for bmc in rack.bmcs]
    report.checks += checks
    if roll.get("finished_at"):
        report.figures["reinstall: roll seconds, request to finished"] = _seconds(
            roll["finished_at"], asked
        )
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        failed = [c.name for c in checks if not c.ok]
        report.failed_step = f"reinstall: {failed[0]}" if failed else "reinstall"


def _status_latency(api: LabApi, vm: VmRun) -> dict[str, float]:
    """Power status read from the BMC, then again from the server's short-lived cache."""
    figures = {}
    for label, query in (("asked of the BMC", "?fresh=true"), ("from the cache", "")):
        clock = time.monotonic()
        api.get(f"/api/v1/hosts/{vm.host_id}/power{query}")
        figures[f"power: status {label}, seconds"] = round(time.monotonic() - clock, 3)
    return figures


def _seconds(text: str | None, since: datetime) -> float:
    if not text:
        return 0.0
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round((when - since).total_seconds(), 1)


def _wait_roll(
    rack: _Rack, vms: list[VmRun], roll_id: int, asked: datetime, timeout: float
) -> dict[str, Any]:
    """Until the roll finished and every VM's second chain is whole, or the deadline."""
    api, server, progress = rack.lab.api, rack.lab.server, rack.lab.progress
    deadline = time.monotonic() + timeout
    roll: dict[str, Any] = {}
    said = ""
    unanswered_since: float | None = None
    while time.monotonic() < deadline:
        if not server.running():
            raise LabError("server", f"serve exited: {server.log_tail(5)}")
        try:
            roll = api.get(f"/api/v1/reinstalls/{roll_id}")
            for vm in vms:
                host = api.get(f"/api/v1/hosts/{vm.host_id}")
                vm.state = str(host.get("state", ""))
                events = api.get(f"/api/v1/hosts/{vm.host_id}/events?limit=1000")["events"]
                vm.events = [e for e in events if _seconds(e["time"], asked) >= 0]
                apply_events(vm.timeline, [_event(e) for e in vm.events], asked)
            unanswered_since = None
        except LabError as exc:
            unanswered_since = unanswered_since or time.monotonic()
            if time.monotonic() - unanswered_since > SERVER_PATIENCE:
                raise
            log.warning("server API did not answer, trying again: %s", exc)
            time.sleep(POLL_SECONDS)
            continue
        now = (
            f"roll {roll_id} {roll['status']}: done {roll['done']}, running "
            f"{roll['running']}, waiting {roll['waiting']}, failed {roll['failed']}"
        )
        if now != said:
            progress(now)
            said = now
        whole = all(vm.timeline.first_missing() is None for vm in vms)
        if roll["status"] != "running" and (whole or roll["status"] == "failed"):
            return roll
        time.sleep(POLL_SECONDS)
    progress(f"deadline of {timeout:.0f} s passed during the roll")
    return roll


def _phase_two_checks(vms: list[VmRun], roll: dict[str, Any], max_parallel: int) -> list[Check]:
    checks = [
        Check(
            "roll done",
            roll.get("status") == "done",
            f"roll {roll.get('id')} {roll.get('status')}: {roll.get('message')}",
        )
    ]
    for vm in vms:
        name = vm.spec.name
        missing = vm.timeline.first_missing()
        checks.append(
            Check(
                f"{name} reinstall chain",
                missing is None,
                "every stage reached" if missing is None else f"stopped before {missing.value}",
            )
        )
        checks.append(Check(f"{name} in pool again", vm.state == "in-pool", f"state {vm.state}"))
        kinds = [e.get("kind") for e in vm.events]
        checks.append(
            Check(
                f"{name} installed again",
                "done" in kinds and "failed" not in kinds,
                f"events since the roll: {', '.join(dict.fromkeys(map(str, kinds)))}",
            )
        )
        paths = [str(e.get("step")) for e in vm.events if e.get("kind") == "boot"]
        expected = EXPECTED_BOOT_PATH[vm.timeline.firmware]
        checks.append(
            Check(
                f"{name} network boot again",
                paths[:1] == [expected],
                f"recorded {', '.join(paths) or 'none'}; expected {expected}",
            )
        )
    spans = [
        (h["started_at"], h["finished_at"] or "9999")
        for h in roll.get("hosts", [])
        if h["started_at"]
    ]
    most = max((sum(1 for s, f in spans if s <= start < f) for start, _ in spans), default=0)
    checks.append(
        Check(
            f"at most {max_parallel} reinstalling at once",
            0 < most <= max_parallel,
            f"at most {most} at once",
        )
    )
    return checks


def _bmc_checks(bmcs: list[lab_bmc.LabBmc], *, phase: int) -> list[Check]:
    """The BMC powered each VM on with the network as its boot device, ``phase`` times."""
    checks = []
    for bmc in bmcs:
        pxe = [a for a in bmc.actions() if "power on: boot device pxe" in a]
        checks.append(
            Check(
                f"{bmc.vm.name} BMC network boots",
                len(pxe) == phase,
                f"{len(pxe)} power-on(s) with boot device pxe; expected {phase}",
            )
        )
    return checks


def _seen_checks(api: LabApi, vms: list[VmRun], bmcs: list[lab_bmc.LabBmc]) -> list[Check]:
    """Each VM's installer read its BMC in-band (KCS, ipmitool) and reported it."""
    checks = []
    for vm, bmc in zip(vms, bmcs, strict=True):
        seen = api.get(f"/api/v1/hosts/{vm.host_id}")["facts"].get("bmc_seen") or {}
        expected = {"address": lab_bmc.ADDRESS, "mac": bmc.mac}
        got = {key: seen.get(key) for key in expected}
        checks.append(
            Check(f"{vm.spec.name} installer saw its BMC", got == expected, f"reported {seen}")
        )
    return checks


def _sol_check(bmc: lab_bmc.LabBmc) -> Check:
    """Serial-over-LAN showed the installed host's boot: GRUB's menu, then Xen, then dom0's
    login prompt, read with the same markers as the serial log."""
    text = bmc.sol_log.read_text(errors="replace") if bmc.sol_log.exists() else ""
    seen = Timeline(bmc.vm.name, "sol")
    scan_text(seen, text, 0.0)
    shown = {
        "GRUB menu": f"{MENU_TITLE} (Serial)" in clean(text),
        "Xen banner": Stage.XEN in seen.seen,
        "dom0 login prompt": Stage.DOM0_LOGIN in seen.seen,
    }
    missing = [name for name, ok in shown.items() if not ok]
    return Check(
        f"{bmc.vm.name} serial-over-LAN",
        not missing,
        f"ipmitool sol activate showed {', '.join(shown)}"
        if not missing
        else f"missing from {bmc.sol_log.name}: {', '.join(missing)} ({len(text)} bytes)",
    )
