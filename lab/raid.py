"""The RAID lab (``lab run --raid``): every VM installs onto a software RAID1 of its two disks,
loses one, and must still boot Xen and dom0 and tell the server its mirror is degraded.

Phase one is the plain lab's chain with a second disk per VM and the lab profile's answer file
mirroring both (``<raid device="md127">`` with the two disks, ``<primary-disk>md127``): each VM
PXE-boots, installs, boots Xen and dom0, joins the pool, and its first-boot agent reports the
mirror (clean, or resyncing while md copies the first disk to the second).

Phase two, once every VM is in the pool: the harness cuts each VM's power, detaches its second
disk and powers it on again with the first alone (network first as always; the server tells it
to boot its disk). It must show Xen's banner and dom0's login prompt on its serial console,
and the server must receive the host's health report (the agent's report unit runs at every
boot) saying md127 is degraded, one of two members, recorded as a ``raid-warning`` event.
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

from lab import qemu
from lab.api import LabApi
from lab.errors import LabError
from lab.harness import (
    PROCESS_MARGIN,
    PROFILE,
    SERVER_PATIENCE,
    Check,
    LabOptions,
    LabReport,
    LabRun,
    VmRun,
    _checks,
    _failed_step,
    _wait,
    run_reported,
    start_lab,
)
from lab.timeline import SerialWatcher, Stage, Timeline, skip_existing

log = logging.getLogger(__name__)

RAID_DEVICE = "md127"
POLL_SECONDS = 5.0
# The agent reports right after its registration, which is when the chain counts a VM in the
# pool: seconds the first reports may take beyond that.
REPORT_PATIENCE = 180.0
# From the mirrors' first reports to pulling the disks. The agent sends its first report and
# then runs the pool hook and disarms itself; ext4 commits every 5 s. Pulled a second after the
# report (power cut, as the lab pulls disks), a VM lost the disarming and, on its degraded boot,
# registered again with its spent token instead of reporting.
SETTLE_SECONDS = 20.0
# The lab profile's answer file: fresh-dhcp's, on a RAID1 of the VM's two disks. Inline text
# (a profile's template may be), so it carries our provisioning extension itself.
RAID_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<installation mode="fresh" sr-type="ext" xmlns:xp="urn:xcp-provision:answerfile:1">
    <raid device="{{ raid_device }}">{% for disk in raid_disks %}<disk>{{ disk }}</disk>{% endfor %}</raid>
    <primary-disk>{{ primary_disk }}</primary-disk>
    <source type="url">{{ source_url }}</source>
    <admin-interface hwaddr="{{ mac }}" proto="dhcp"/>
    <hostname>{{ hostname }}</hostname>
    <timezone>Etc/UTC</timezone>
    <keymap>us</keymap>
    <xp:provisioning>
        <xp:server-url>{{ server_url }}</xp:server-url>
        <xp:token>{{ token }}</xp:token>
{%- if pool %}
        <xp:pool>{{ pool }}</xp:pool>
{%- endif %}
    </xp:provisioning>
</installation>
"""  # noqa: E501 - the raid line reads best whole


def raid_profile(disk_bus: str) -> dict[str, Any]:
    """The lab profile's changes that make its answer file a RAID1 of disks 1 and 2."""
    disks = [qemu.guest_disk_name(disk_bus, number) for number in (1, 2)]
    return {
        "template": RAID_TEMPLATE,
        "disk_rule": {"disk": RAID_DEVICE},
        "variables": {"raid_device": RAID_DEVICE, "raid_disks": disks},
    }


@dataclass
class DegradedBoot:
    """One VM's boot with its second disk pulled: seconds from that power-on to each proof."""

    vm: str
    seen: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)

    def mark(self, what: str, seconds: float, evidence: str) -> None:
        if what not in self.seen:
            self.seen[what] = round(seconds, 1)
            self.evidence[what] = evidence[:200]


PROOFS = ("xen", "dom0-login", "degraded-report")


@dataclass
class RaidReport(LabReport):
    degraded: list[DegradedBoot] = field(default_factory=list)

    def summary(self) -> str:
        lines = [super().summary().rsplit("\nlab: ", 1)[0], ""]
        if self.degraded:
            lines.append("with one disk (seconds from the power-on without the second disk):")
            for boot in self.degraded:
                cells = [f"{p} {boot.seen[p]:.1f}" if p in boot.seen else f"{p} -" for p in PROOFS]
                lines.append(f"  {boot.vm}: {', '.join(cells)}")
        lines.append(self.verdict("raid lab"))
        return "\n".join(lines)

    def to_json(self) -> str:
        data = json.loads(super().to_json())
        data["degraded"] = [
            {"vm": b.vm, "seen": b.seen, "evidence": b.evidence} for b in self.degraded
        ]
        return json.dumps(data, indent=2) + "\n"


def run_raid(options: LabOptions, progress: Callable[[str], None] = print) -> RaidReport:
    """Run the RAID lab once; like :func:`lab.harness.run_lab`, it reports, never raises."""
    report = RaidReport(options.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress), progress
    )


def _run(
    options: LabOptions,
    report: RaidReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> None:
    max_seconds = options.timeout * 2 + PROCESS_MARGIN
    lab = start_lab(options, report, teardown, progress, max_seconds)
    lab.api.call("PATCH", f"/api/v1/profiles/{PROFILE}", raid_profile(options.disk_bus))
    teardown.callback(_discard_second_disks, lab.vms)
    for vm in lab.vms:
        second = qemu.extra_disk_args(vm.spec, 2)
        vm.process = qemu.power_on(vm.spec, lab.net, lab.max_seconds, extra=second)
        vm.powered_on = datetime.now(UTC)
        teardown.callback(vm.process.stop)
        vm.watcher = SerialWatcher(vm.spec.serial_log, vm.timeline, vm.process.started).start()
        teardown.callback(vm.watcher.stop)
        progress(f"{vm.spec.name}: powered on with two disks ({vm.timeline.firmware})")
    _wait(lab.api, lab.server, lab.vms, options.timeout, progress, lab=lab)
    for vm in lab.vms:
        assert vm.watcher is not None
        vm.watcher.read_once(final=True)
    _wait_for_mirrors(lab, REPORT_PATIENCE)
    report.checks = _checks(lab.api, lab.vms) + [_mirror_check(lab.api, vm) for vm in lab.vms]
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        report.failed_step = _failed_step(lab.vms, report.checks)
        return
    progress(f"every VM is in the pool on its mirror; {SETTLE_SECONDS:.0f} s for their agents "
             "to finish and their disks to commit")
    time.sleep(SETTLE_SECONDS)
    progress("pulling each VM's second disk")
    report.degraded = _pull_disks(lab, options.timeout)
    checks = [check for boot in report.degraded for check in _degraded_checks(lab.api, boot)]
    report.checks += checks
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        failed = [c.name for c in checks if not c.ok]
        report.failed_step = f"one disk: {failed[0]}" if failed else "one disk"


def _discard_second_disks(vms: list[VmRun]) -> None:
    for vm in vms:
        qemu.extra_disk(vm.spec, 2).unlink(missing_ok=True)


def _health(api: LabApi, vm: VmRun) -> dict[str, Any]:
    return api.get(f"/api/v1/hosts/{vm.host_id}").get("health") or {}


def _array(health: dict[str, Any]) -> dict[str, Any]:
    """The lab's md array as the host last reported it ({} when it did not)."""
    arrays = {a.get("name"): a for a in health.get("raid") or []}
    return arrays.get(RAID_DEVICE, {})


def _shown(health: dict[str, Any]) -> str:
    return f"health {json.dumps(health)}" if health else "no health report"


def _wait_for_mirrors(lab: LabRun, seconds: float) -> None:
    """Until every VM in the pool reported its array, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    waiting = [vm for vm in lab.vms if vm.state == "in-pool"]
    while waiting and time.monotonic() < deadline:
        waiting = [vm for vm in waiting if not _array(_health(lab.api, vm))]
        if waiting:
            time.sleep(POLL_SECONDS)


def _mirror_check(api: LabApi, vm: VmRun) -> Check:
    """The first-boot agent reported both disks in the mirror (clean, or still copying)."""
    health = _health(api, vm)
    md = _array(health)
    whole = (md.get("members"), md.get("expected")) == (2, 2)
    ok = whole and md.get("state") in ("clean", "resyncing")
    return Check(f"{vm.spec.name} reports its mirror", ok, _shown(health))


@dataclass
class _OneDisk:
    """A VM booting without its second disk, as the harness watches it."""

    vm: VmRun
    boot: DegradedBoot
    timeline: Timeline  # its serial console since that power-on
    clock: float  # time.monotonic() at that power-on


def _pull_disk(lab: LabRun, vm: VmRun) -> _OneDisk:
    """Power cut, second disk out, power on with the first alone."""
    lab.power_cut(vm)
    for disk in (vm.spec.disk, qemu.extra_disk(vm.spec, 2)):
        qemu.wait_released(disk)
    timeline = Timeline(vm.spec.name, vm.timeline.firmware)
    clock = time.monotonic()
    watcher = skip_existing(SerialWatcher(vm.spec.serial_log, timeline, clock))
    vm.process = qemu.power_on_again(vm.spec, lab.net, lab.max_seconds)
    lab.teardown.callback(vm.process.stop)
    lab.teardown.callback(watcher.start().stop)
    lab.progress(f"{vm.spec.name}: powered on again without its second disk")
    return _OneDisk(vm, DegradedBoot(vm.spec.name), timeline, clock)


def _pull_disks(lab: LabRun, timeout: float) -> list[DegradedBoot]:
    """Each VM without its second disk; then wait for Xen, dom0's prompt and the report."""
    vms = [_pull_disk(lab, vm) for vm in lab.vms]
    deadline = time.monotonic() + timeout
    said: dict[str, str] = {}
    unanswered_since: float | None = None
    while time.monotonic() < deadline:
        if not lab.server.running():
            raise LabError("server", f"serve exited: {lab.server.log_tail(5)}")
        try:
            for one in vms:
                _observe(lab.api, one)
            unanswered_since = None
        except LabError as exc:
            unanswered_since = unanswered_since or time.monotonic()
            if time.monotonic() - unanswered_since > SERVER_PATIENCE:
                raise
            log.warning("server API did not answer, trying again: %s", exc)
        for one in vms:
            last = next((p for p in reversed(PROOFS) if p in one.boot.seen), "")
            if last and said.get(one.boot.vm) != last:
                said[one.boot.vm] = last
                lab.progress(f"{one.boot.vm}: {last} at {one.boot.seen[last]:.0f} s with one disk")
        why = _stopped(vms)
        if why:
            lab.progress(why)
            return [one.boot for one in vms]
        time.sleep(POLL_SECONDS)
    lab.progress(f"deadline of {timeout:.0f} s passed with one disk")
    return [one.boot for one in vms]


def _observe(api: LabApi, one: _OneDisk) -> None:
    for stage, proof in ((Stage.XEN, "xen"), (Stage.DOM0_LOGIN, "dom0-login")):
        if stage in one.timeline.seen:
            one.boot.mark(proof, one.timeline.seen[stage], one.timeline.evidence[stage])
    health = _health(api, one.vm)
    if health.get("raid_state") == "degraded":
        one.boot.mark("degraded-report", time.monotonic() - one.clock, json.dumps(health))


def _stopped(vms: list[_OneDisk]) -> str:
    """Why waiting longer is pointless ("" while it is not): all proven, or a VM broke."""
    if all(len(one.boot.seen) == len(PROOFS) for one in vms):
        return "every VM proved all with one disk"
    for one in vms:
        if one.timeline.fatal:
            return f"{one.boot.vm}: broken with one disk: {one.timeline.fatal}"
        process = one.vm.process
        if process is not None and not process.running():
            return f"{one.boot.vm}: QEMU stopped with one disk: {process.log_tail(2)}"
    return ""


def _degraded_checks(api: LabApi, boot: DegradedBoot) -> list[Check]:
    name = boot.vm
    checks = [
        Check(f"{name} Xen banner with one disk", "xen" in boot.seen,
              boot.evidence.get("xen", "absent")),
        Check(f"{name} dom0 login prompt with one disk", "dom0-login" in boot.seen,
              boot.evidence.get("dom0-login", "absent")),
    ]  # fmt: skip
    host = api.get(f"/api/v1/hosts/{name}")
    health = host.get("health") or {}
    md = _array(health)
    degraded = md.get("state") == "degraded" and (md.get("members"), md.get("expected")) == (1, 2)
    checks.append(Check(f"{name} reports its mirror degraded",
                        degraded and "degraded-report" in boot.seen, _shown(health)))  # fmt: skip
    events = api.get(f"/api/v1/events?host={host['id']}&kind=raid-warning&limit=50")
    warnings = [str(e.get("message", "")) for e in events.get("events", [])]
    warned = any(RAID_DEVICE in message and "degraded" in message for message in warnings)
    checks.append(Check(f"{name} degraded mirror is a warning event", warned,
                        "; ".join(warnings) or "no raid-warning event"))  # fmt: skip
    return checks
