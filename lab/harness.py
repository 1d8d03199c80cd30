"""The lab run: build or reuse the release, boot VMs from our server, check the whole chain.

Every run ends the same way whatever happened: VMs, the server, the site DHCP and both
namespaces are gone, and the results folder holds the serial logs, the server's log and a
report saying which step of the chain each VM reached and where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from answerfiles.model import NetworkBackend
from installer.dom0_network import BRIDGE
from lab import dnsmasq, netns, qemu
from lab.api import LabApi
from lab.errors import LabError
from lab.process import Background
from lab.release import default_lab_home, held, prepare_release, snapshot
from lab.server import TFTP_PORT, ServerSpec, create_token, kill_server, start_server
from lab.timeline import (
    CHAIN,
    SerialWatcher,
    ServerEvent,
    Stage,
    Timeline,
    apply_events,
    clean,
    render_table,
)

log = logging.getLogger(__name__)

POOL = "lab"
PROFILE = "lab"
# The lab profile's installer kernel arguments. The last console= wins /dev/console: the
# installer's output lands on the serial log.
INSTALLER_ARGS = "console=ttyS0,115200"
RELEASE = "lab"
POLL_SECONDS = 5.0
SERVER_PATIENCE = 60.0
# Spare time the processes in the namespace get beyond the run's own deadline before their
# `timeout` wrapper kills them even if the harness itself died.
PROCESS_MARGIN = 600


@dataclass(frozen=True)
class LabOptions:
    results: Path
    firmwares: tuple[str, ...] = ("bios",)  # one entry per VM: one of qemu.FIRMWARES
    timeout: float = 1800.0  # seconds from the first power-on until every check must hold
    release_dir: Path | None = None
    cache_dir: Path | None = None
    build: bool = True  # run the image builders (cached); False: use release_dir as it is
    disk_bus: str = "virtio"
    memory_mib: int = qemu.MEMORY_MIB
    # Host names the site's DNS answers with the site's own address (lab.dnsmasq); none: the
    # site runs DHCP alone, without DNS.
    site_names: tuple[str, ...] = ()
    # Called after every poll of the server while VMs run: fault tests act on the lab here.
    on_poll: Callable[[LabRun], None] | None = None
    # Called once the network exists, before the site DHCP and the server start: a lab that
    # adds services to the site (lab.ipv6: DNS, an IPv6 address) starts them here.
    site_setup: SiteSetup | None = None

    @property
    def release_path(self) -> Path:
        return self.release_dir or default_lab_home() / "releases" / RELEASE

    @property
    def needs_tftp(self) -> bool:
        """UEFI HTTP Boot machines alone boot without TFTP: the server then runs none."""
        return any(firmware != "uefi-http" for firmware in self.firmwares)


@dataclass(frozen=True)
class SiteServices:
    """What :attr:`LabOptions.site_setup` tells the rest of the lab: the resolver the site's
    DHCP hands out, the IPv6 prefix it advertises as the site's router (none: it sends no
    router advertisements), and how the server listens and names itself to the VMs."""

    resolver: str = ""
    advertised: dnsmasq.Ipv6Offer | None = None
    bind: str = "0.0.0.0"  # noqa: S104 - only the namespace's bridge and loopback exist
    public_url: str = ""
    server_env: tuple[tuple[str, str], ...] = ()


# (network, results folder, seconds the processes may live, teardown) -> what the site offers.
SiteSetup = Callable[[netns.LabNetwork, Path, float, contextlib.ExitStack], SiteServices]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class VmRun:
    spec: qemu.VmSpec
    timeline: Timeline
    host_id: int | None = None
    powered_on: datetime | None = None
    process: Background | None = None
    watcher: SerialWatcher | None = None
    state: str = ""
    failure_log: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LabRun:
    """The running lab as a hook (:attr:`LabOptions.on_poll`) sees it between two polls, with
    the faults it may cause: the server killed and started again on the same data directory
    and port, a VM's power cut and restored (same disk and MAC)."""

    net: netns.LabNetwork
    server_spec: ServerSpec
    server: Background
    api: LabApi
    vms: list[VmRun]
    max_seconds: float
    teardown: contextlib.ExitStack
    progress: Callable[[str], None]

    def kill_server(self) -> int:
        pid = kill_server(self.server)
        self.progress(f"server: serve (pid {pid}) killed with SIGKILL")
        return pid

    def restart_server(self) -> None:
        self.server = start_server(self.server_spec, self.net, self.max_seconds)
        self.teardown.callback(self.server.stop)
        self.progress(f"server: started again (pid {self.server.pid}) on the same data")

    def power_cut(self, vm: VmRun) -> None:
        assert vm.process is not None
        qemu.power_cut(vm.process)
        self.progress(f"{vm.spec.name}: power cut")

    def power_on_again(self, vm: VmRun) -> None:
        vm.process = qemu.power_on_again(vm.spec, self.net, self.max_seconds)
        self.teardown.callback(vm.process.stop)
        self.progress(f"{vm.spec.name}: powered on again (same disk and MAC)")


@dataclass
class LabReport:
    results: Path
    ok: bool = False
    failed_step: str = ""
    error: str = ""
    checks: list[Check] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def verdict(self, lab: str) -> str:
        """The summary's last line, which scripts and people look for."""
        verdict = "PASS" if self.ok else f"FAIL at {self.failed_step or 'unknown step'}"
        return f"{lab}: {verdict} (results in {self.results})"

    def summary(self) -> str:
        lines = ["timeline (seconds from power-on):", render_table(self.timelines), ""]
        lines += [f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        for name, value in self.figures.items():
            lines.append(f"{name}: {value}")
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(self.verdict("lab"))
        return "\n".join(lines)

    def to_json(self) -> str:
        data = {
            "ok": self.ok,
            "failed_step": self.failed_step,
            "error": self.error,
            "checks": [asdict(c) for c in self.checks],
            "timelines": [
                {
                    "vm": t.vm,
                    "firmware": t.firmware,
                    "seen": {s.value: t.seen[s] for s in CHAIN if s in t.seen},
                    "evidence": {s.value: t.evidence[s] for s in CHAIN if s in t.evidence},
                    "stopped_before": t.first_missing().value if t.first_missing() else None,
                    "fatal": t.fatal or None,
                }
                for t in self.timelines
            ],
            "figures": self.figures,
        }
        return json.dumps(data, indent=2) + "\n"


def default_results() -> Path:
    return Path("results") / f"lab-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


R = TypeVar("R", bound=LabReport)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def run_lab(options: LabOptions, progress: Callable[[str], None] = print) -> LabReport:
    """Run the lab once; never raises for a failure of the chain, only reports it.

    KeyboardInterrupt still propagates (after teardown) so Ctrl-C ends the program.
    """
    report = LabReport(options.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress), progress
    )


def run_reported(
    report: R, body: Callable[[contextlib.ExitStack], None], progress: Callable[[str], None]
) -> R:
    """Run ``body`` with a teardown stack and the lab's log, turning a LabError into the
    report's failure; the report is written whatever happened, and KeyboardInterrupt still
    propagates (after teardown) so Ctrl-C ends the program."""
    results = report.results
    results.mkdir(parents=True, exist_ok=True)
    with _log_to(results / "lab.log"), contextlib.ExitStack() as teardown:
        try:
            body(teardown)
        except LabError as exc:
            report.failed_step = report.failed_step or exc.step
            report.error = str(exc)
            log.error("lab failed: %s", exc)
        except KeyboardInterrupt:
            report.failed_step = report.failed_step or "interrupted"
            report.error = "interrupted (Ctrl-C or SIGTERM); tore everything down"
            progress("interrupted: tearing down")
            _write_report(report, results)
            raise
        finally:
            progress("tearing down VMs, server, site DHCP and namespaces")
    _write_report(report, results)
    return report


def _write_report(report: LabReport, results: Path) -> None:
    (results / "report.json").write_text(report.to_json())
    (results / "summary.txt").write_text(report.summary() + "\n")


def start_lab(
    options: LabOptions,
    report: LabReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
    max_seconds: float,
) -> LabRun:
    """Release, namespace, site DHCP, server and inventory, each torn down by ``teardown``;
    the VMs are described and registered, none is powered on."""
    results = report.results
    release_dir = options.release_path
    with held(release_dir):
        if options.build:
            progress(f"release: building or reusing the cached images into {release_dir}")
            started = time.monotonic()
            _manifest, seconds = prepare_release(
                release_dir, results / "images.log", options.cache_dir
            )
            report.figures["release seconds"] = round(time.monotonic() - started, 1)
            for builder, value in seconds.items():
                report.figures[f"release {builder} seconds"] = value
        elif not (release_dir / "manifest.json").is_file():
            why = f"{release_dir} has no manifest.json; build it (drop --no-build)"
            raise LabError("release", why)
        if options.release_dir is None:  # the shared one: serve a copy nothing else rebuilds
            release_dir = snapshot(release_dir, results / "release")

    net = netns.create()
    teardown.callback(netns.destroy, net)
    progress(f"network: namespace {net.namespace}, bridge {net.bridge}, server {net.server_ip}")
    services = SiteServices()
    if options.site_setup is not None:
        services = options.site_setup(net, results, max_seconds, teardown)
    site = dnsmasq.start_site_dhcp(
        net,
        results,
        max_seconds,
        names=options.site_names,
        resolver=services.resolver,
        advertised=services.advertised,
    )
    teardown.callback(site.stop)

    data_dir = results / "server-data"
    (data_dir / "releases").mkdir(parents=True, exist_ok=True)
    link = data_dir / "releases" / RELEASE
    if not link.exists():
        link.symlink_to(release_dir.resolve(), target_is_directory=True)
    token = create_token(data_dir)
    spec = ServerSpec(
        data_dir,
        results / "server.log",
        tftp_port=TFTP_PORT if options.needs_tftp else 0,
        public_url=services.public_url,
        bind=services.bind,
        env=services.server_env,
    )
    server = start_server(spec, net, max_seconds)
    teardown.callback(server.stop)
    api = LabApi.with_token(net, spec.base_url(net), token, results)
    tftp = f"TFTP on {spec.tftp_port}" if spec.tftp_port else "TFTP off"
    progress(f"server: {spec.base_url(net)}, {tftp} (log {spec.log_path})")

    vms = [
        VmRun(
            qemu.VmSpec(
                name=f"lab-vm{i}",
                mac=qemu.mac_for(i),
                tap=f"tap{i}",
                workdir=results,
                uefi=firmware in ("uefi", "uefi-http"),
                http_boot=firmware == "uefi-http",
                disk_bus=options.disk_bus,
                memory_mib=options.memory_mib,
            ),
            Timeline(f"lab-vm{i}", firmware),
        )
        for i, firmware in enumerate(options.firmwares, start=1)
    ]
    report.timelines = [vm.timeline for vm in vms]
    _seed_inventory(api, vms, options.disk_bus)
    teardown.callback(_discard_disks, vms)
    return LabRun(net, spec, server, api, vms, max_seconds, teardown, progress)


def _run(
    options: LabOptions,
    report: LabReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> None:
    lab = start_lab(options, report, teardown, progress, options.timeout + PROCESS_MARGIN)
    report.checks = boot_and_check(lab, options)
    report.ok = all(check.ok for check in report.checks)
    if not report.ok:
        report.failed_step = _failed_step(lab.vms, report.checks)


def boot_and_check(lab: LabRun, options: LabOptions) -> list[Check]:
    """The plain lab's chain on a started lab: power every VM on from the network, wait until
    the chain ends one way or another, and check it."""
    for vm in lab.vms:
        vm.process = qemu.power_on(vm.spec, lab.net, lab.max_seconds)
        vm.powered_on = datetime.now(UTC)
        lab.teardown.callback(vm.process.stop)
        vm.watcher = SerialWatcher(vm.spec.serial_log, vm.timeline, vm.process.started).start()
        lab.teardown.callback(vm.watcher.stop)
        lab.progress(f"{vm.spec.name}: powered on ({vm.timeline.firmware}, MAC {vm.spec.mac})")
    _wait(
        lab.api,
        lab.server,
        lab.vms,
        options.timeout,
        lab.progress,
        lab=lab,
        on_poll=options.on_poll,
    )
    for vm in lab.vms:
        assert vm.watcher is not None
        vm.watcher.read_once(final=True)
    return _checks(lab.api, lab.vms)


def _seed_inventory(api: LabApi, vms: list[VmRun], disk_bus: str) -> None:
    """A pool, a profile installing the lab release into it, and one host per VM."""
    disk = "vda" if disk_bus == "virtio" else "sda"
    api.post("/api/v1/pools", {"name": POOL})
    api.post(
        "/api/v1/profiles",
        {
            "name": PROFILE,
            "release": RELEASE,
            "template": "fresh-dhcp",
            "pool": POOL,
            "disk_rule": {"disk": disk},
            "kernel_args": INSTALLER_ARGS,
        },
    )
    for vm in vms:
        host = api.post(
            "/api/v1/hosts", {"mac": vm.spec.mac, "hostname": vm.spec.name, "profile": PROFILE}
        )
        vm.host_id = int(host["id"])
        vm.state = str(host.get("state", ""))


def _discard_disks(vms: list[VmRun]) -> None:
    """Virtual disks are tens of GB of possibility and a few GB of fact: never keep them."""
    for vm in vms:
        vm.spec.disk.unlink(missing_ok=True)


def _refresh(api: LabApi, vm: VmRun) -> None:
    host = api.get(f"/api/v1/hosts/{vm.host_id}")
    vm.state = str(host.get("state", ""))
    vm.failure_log = str(host.get("failure_log") or "")
    vm.events = api.get(f"/api/v1/hosts/{vm.host_id}/events?limit=1000").get("events", [])
    assert vm.powered_on is not None
    apply_events(vm.timeline, [_event(e) for e in vm.events], vm.powered_on)


def _event(raw: dict[str, Any]) -> ServerEvent:
    when = datetime.fromisoformat(str(raw["time"]).replace("Z", "+00:00"))
    return ServerEvent(
        when, str(raw.get("kind", "")), str(raw.get("step") or ""), str(raw.get("message") or "")
    )


def _wait(
    api: LabApi,
    server: Background,
    vms: list[VmRun],
    timeout: float,
    progress: Callable[[str], None],
    *,
    lab: LabRun | None = None,
    on_poll: Callable[[LabRun], None] | None = None,
) -> None:
    """Until every VM reached every stage, one broke, all VMs died, or the deadline passed.

    A slow answer from a loaded server is retried on the next round; a dead server, or one that
    does not answer for a minute, ends the run as the server's failure.
    """
    deadline = time.monotonic() + timeout
    reported: dict[str, Stage | None] = {}
    unanswered_since: float | None = None
    while time.monotonic() < deadline:
        if not server.running():
            raise LabError(
                "server", f"serve exited with {server.proc.returncode}: {server.log_tail(5)}"
            )
        try:
            for vm in vms:
                _refresh(api, vm)
            unanswered_since = None
        except LabError as exc:
            unanswered_since = unanswered_since or time.monotonic()
            if time.monotonic() - unanswered_since > SERVER_PATIENCE:
                raise
            log.warning("server API did not answer, trying again: %s", exc)
        if lab is not None and on_poll is not None:
            on_poll(lab)
            server = lab.server  # the hook may have started it again
        for vm in vms:
            last = vm.timeline.last_reached()
            if reported.get(vm.spec.name) != last and last is not None:
                reported[vm.spec.name] = last
                progress(f"{vm.spec.name}: {last.value} at {vm.timeline.seen[last]:.0f} s")
        if all(vm.timeline.first_missing() is None for vm in vms):
            return
        broken = [vm for vm in vms if vm.state == "failed" or vm.timeline.fatal]
        if broken:
            for vm in broken:
                why = vm.timeline.fatal or "the server says the install failed"
                progress(f"{vm.spec.name}: broken: {why}")
            progress("stopping early: a broken VM cannot finish by itself")
            return
        if all(vm.process is not None and not vm.process.running() for vm in vms):
            progress("every VM stopped; stopping early")
            return
        time.sleep(POLL_SECONDS)
    progress(f"deadline of {timeout:.0f} s passed")


def _checks(api: LabApi, vms: list[VmRun]) -> list[Check]:
    checks: list[Check] = []
    for vm in vms:
        _refresh(api, vm)
        name = vm.spec.name
        tl = vm.timeline
        missing = tl.first_missing()
        checks.append(Check(f"{name} chain", missing is None, _chain_detail(vm)))
        checks.append(Check(f"{name} in pool", vm.state == "in-pool", f"server state {vm.state}"))
        checks.append(_management_network(api, vm))
        kinds = [e.get("kind") for e in vm.events]
        install_ok = "done" in kinds and "progress" in kinds and "failed" not in kinds
        detail = f"events: {', '.join(dict.fromkeys(str(k) for k in kinds)) or 'none'}"
        if vm.failure_log:
            detail += f"; failure log ends: {vm.failure_log.strip().splitlines()[-1][:200]}"
        checks.append(Check(f"{name} install events", install_ok, detail))
        checks.append(_boot_path(vm))
        checks.append(
            Check(f"{name} Xen banner", tl.reached(Stage.XEN), tl.evidence.get(Stage.XEN, "absent"))
        )
        checks.append(
            Check(
                f"{name} dom0 login prompt",
                tl.reached(Stage.DOM0_LOGIN),
                tl.evidence.get(Stage.DOM0_LOGIN, "absent"),
            )
        )
    checks.append(_one_master(api, vms))
    return checks


# The lab's template leaves <network-backend> out: the default, Open vSwitch.
EXPECTED_BACKEND = NetworkBackend.OPENVSWITCH


def _management_network(api: LabApi, vm: VmRun) -> Check:
    """dom0 runs the backend the answer file asked for, with its management address on the
    bridge, as the first-boot agent found them running (it reports what runs, not the answer
    file)."""
    facts = api.get(f"/api/v1/hosts/{vm.host_id}").get("facts") or {}
    backend, interface = facts.get("network_backend"), facts.get("management_interface")
    return Check(
        f"{vm.spec.name} management network",
        backend == EXPECTED_BACKEND and interface == BRIDGE,
        f"reported {facts.get('management_ip')} on {interface} with backend {backend}; "
        f"expected {BRIDGE} on {EXPECTED_BACKEND}",
    )


# How each lab firmware starts its network boot, as the server's ``boot`` event names it: BIOS
# VMs have iPXE as their NIC's option ROM, UEFI VMs the firmware's own PXE or HTTP Boot client.
EXPECTED_BOOT_PATH = {"bios": "iPXE", "uefi": "UEFI PXE", "uefi-http": "UEFI HTTP"}


def _boot_path(vm: VmRun) -> Check:
    """The first network boot the server recorded is the one the firmware was set up for."""
    paths = [str(e.get("step")) for e in vm.events if e.get("kind") == "boot"]
    expected = EXPECTED_BOOT_PATH[vm.timeline.firmware]
    return Check(
        f"{vm.spec.name} boot path",
        paths[:1] == [expected],
        f"recorded {', '.join(paths) or 'none'}; expected {expected}",
    )


def _one_master(api: LabApi, vms: list[VmRun]) -> Check:
    masters = [
        vm.spec.name
        for vm in vms
        if any(
            e.get("kind") == "pool-joined" and str(e.get("message", "")).endswith("as master")
            for e in vm.events
        )
    ]
    try:
        pool = api.get(f"/api/v1/pools/{POOL}")
    except LabError as exc:
        return Check("exactly one master", False, str(exc))
    master = pool.get("master")
    return Check(
        "exactly one master",
        len(masters) == 1 and master == masters[0],
        f"pool {POOL} master {master!r}; joined as master: {', '.join(masters) or 'none'}",
    )


def _chain_detail(vm: VmRun) -> str:
    tl = vm.timeline
    missing = tl.first_missing()
    if missing is None:
        return "every stage reached"
    last = tl.last_reached()
    detail = f"stopped before {missing.value}; last reached {last.value if last else 'nothing'}"
    if tl.fatal:
        detail += f"; fatal: {tl.fatal!r}"
    return detail + _tail_hint(vm)


def _tail_hint(vm: VmRun) -> str:
    try:
        text = vm.spec.serial_log.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in clean(text).split("\n") if line.strip()]
    return f"; serial ends: {lines[-1][:160]!r}" if lines else "; serial log empty"


def _failed_step(vms: list[VmRun], checks: list[Check]) -> str:
    for vm in vms:
        missing = vm.timeline.first_missing()
        if missing is not None:
            return f"{missing.value} ({vm.spec.name})"
    failed = [c.name for c in checks if not c.ok]
    return failed[0] if failed else ""
