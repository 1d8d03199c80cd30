"""The XCP-ng examples lab (``lab run --xcpng-examples``): answer files from XCP-ng 8.3's
documentation install here unchanged.

One VM per example, SATA disks so the guest names them as the examples do: the documentation's
fresh install (``sda``, guest disks ``sdb`` and ``sdc``) on a UEFI VM with three disks, the RAID1
example (``md127`` over ``sda`` and ``sdb``, ``srtype="lvm"``, keymap ``fr``) on a BIOS VM with
two. Each PXE-boots from our server as in the plain lab, and the answer file it gets is the
example's text as a profile template, byte for byte (:data:`EXAMPLES_DIR` holds copies of the
examples the answer-file tests read).

The examples point at the site's web server, ``http://pxehost.example.com/``: the site's DNS
answers that name with the site's address, and the site's own nginx serves ``/xcp-ng/`` (this
lab's release) and ``/myscripts/post-install-script``, a script the lab writes. Run with the
mounted target root as its argument, that script fetches the answer file again from the URL on
the installer's command line, appends a line with its SHA-256 to the installed system's
``/etc/issue`` (dom0's getty prints it above the login prompt), and requests a marker URL from
pxehost with the same digest (nginx's access log).

Without our ``xp:provisioning`` extension a host never reports to our server, so the lab judges
as an operator would: from the VM's serial console (the installer exited 0, then GRUB's menu,
Xen's banner, dom0's kernel mounting its root where the example put it, on the mirror for the
RAID example, and dom0's login prompt) and from the site's logs (DNS queries for pxehost, the
release and the script fetched from the site's web server), plus the answer file fetched back
from our server for that host and compared with the example's bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from common.runner import run
from hypervisor.grub import MENU_TITLE
from lab import qemu
from lab.dnsmasq import leases
from lab.errors import LabError
from lab.harness import (
    EXPECTED_BOOT_PATH,
    INSTALLER_ARGS,
    PROCESS_MARGIN,
    RELEASE,
    Check,
    LabOptions,
    LabReport,
    LabRun,
    VmRun,
    run_reported,
    start_lab,
)
from lab.site_web import SiteWeb, start_site_web
from lab.timeline import SerialWatcher, Stage, clean

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "xcpng_examples"
SITE_HOST = "pxehost.example.com"
POLL_SECONDS = 5.0
# What the lab's post-install script writes into the installed system's /etc/issue.
PROOF = "xcp-lab post-install-script ran"
MARKER_PATH = "/myscripts/ran"
INSTALLER_EXIT_0 = "xcp-installer: xcp-install exited with status 0"
CONSOLE_PROOF = "post-install proof on the console"

POST_INSTALL_SCRIPT = f"""\
#!/bin/sh
# The examples lab's post-install-script: XCP-ng runs it with the mounted target root as $1.
# It proves it ran inside the installer, on the installed system: it fetches the answer file
# again from the URL on the installer's command line (same host, same token), writes a line
# with its SHA-256 into the target's /etc/issue, and asks pxehost for a marker URL.
root="$1"
url=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^answerfile=//p' | head -n 1)
get() {{ python3 -c 'import sys, urllib.request as u; sys.stdout.buffer.write(u.urlopen(sys.argv[1], timeout=60).read())' "$1"; }}
digest=$(get "$url" | sha256sum | cut -d' ' -f1)
echo "{PROOF} (XS_STAGE=$XS_STAGE), answer file sha256 $digest" >> "$root/etc/issue"
get "http://{SITE_HOST}{MARKER_PATH}?stage=$XS_STAGE&root=$root&answerfile-sha256=$digest" > /dev/null
"""  # noqa: E501 - the script's lines read best whole


@dataclass(frozen=True)
class Example:
    """One documentation example and the VM it installs: its firmware, its number of disks, and
    the lines dom0's kernel must print on the serial console when the install did what the
    example asks (proof name, pattern)."""

    file: str
    firmware: str
    disks: int
    dom0_lines: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> bytes:
        return (EXAMPLES_DIR / self.file).read_bytes()

    @property
    def profile(self) -> str:
        return self.file.removesuffix(".xml")

    @property
    def has_post_install_script(self) -> bool:
        return b"<post-install-script" in self.text


EXAMPLES = (
    Example(
        "xcpng-doc-fresh.xml", "uefi", 3,
        (("dom0 root on sda1", r"EXT4-fs \(sda1\): mounted filesystem"),),
    ),
    Example(
        "xcpng-raid.xml", "bios", 2,
        (("md127 mirrors both disks", r"md/raid1:md127: active with 2 out of 2 mirrors"),
         ("dom0 root on md127p1", r"EXT4-fs \(md127p1\): mounted filesystem")),
    ),
)  # fmt: skip

# Proofs on a VM's serial console, in the order they must appear; an example's dom0 lines come
# between Xen's banner and dom0's login prompt.
SERIAL_PROOFS = ("installer exit 0", "GRUB menu", "Xen banner", "dom0 login prompt")


@dataclass
class ExampleRun:
    """One example's VM and what its serial console showed, in seconds from its power-on."""

    example: Example
    vm: VmRun
    started: float = 0.0  # time.monotonic() at its power-on
    seen: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def mark(self, proof: str, evidence: str) -> None:
        """Stamped when the lab notices it: the poll's resolution, a few seconds."""
        if proof not in self.seen:
            self.seen[proof] = round(time.monotonic() - self.started, 1)
            self.evidence[proof] = evidence.strip()[:200]

    @property
    def proofs(self) -> tuple[str, ...]:
        script = self.example.has_post_install_script
        extra = (CONSOLE_PROOF,) if script else ()
        dom0 = tuple(name for name, _pattern in self.example.dom0_lines)
        return SERIAL_PROOFS[:3] + dom0 + SERIAL_PROOFS[3:] + extra

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


@dataclass
class ExamplesReport(LabReport):
    runs: list[ExampleRun] = field(default_factory=list)

    def summary(self) -> str:
        lines = [super().summary().rsplit("\nlab: ", 1)[0], ""]
        lines.append("serial console (seconds from power-on):")
        for one in self.runs:
            cells = [f"{p} {one.seen[p]:.1f}" if p in one.seen else f"{p} -" for p in one.proofs]
            lines.append(f"  {one.vm.spec.name}: {', '.join(cells)}")
        for one in self.runs:
            failed = [c.name for c in one.checks if not c.ok]
            verdict = "PASS" if one.ok else f"FAIL at {failed[0] if failed else 'not run'}"
            lines.append(f"example {one.example.file} ({one.vm.spec.name}, "
                         f"{one.example.firmware}): {verdict}")  # fmt: skip
        lines.append(self.verdict("xcp-ng examples lab"))
        return "\n".join(lines)

    def to_json(self) -> str:
        data = json.loads(super().to_json())
        data["examples"] = [
            {"file": one.example.file, "vm": one.vm.spec.name, "firmware": one.example.firmware,
             "ok": one.ok, "seen": one.seen, "evidence": one.evidence}
            for one in self.runs
        ]  # fmt: skip
        return json.dumps(data, indent=2) + "\n"


def run_examples(options: LabOptions, progress: Callable[[str], None] = print) -> ExamplesReport:
    """Run the examples lab once; like :func:`lab.harness.run_lab`, it reports, never raises.
    ``options.firmwares`` and ``options.disk_bus`` are the examples' own (UEFI then BIOS, SATA)."""
    options = replace(
        options,
        firmwares=tuple(e.firmware for e in EXAMPLES),
        disk_bus="sata",
        site_names=(SITE_HOST,),
    )
    report = ExamplesReport(options.results.resolve())
    return run_reported(
        report, lambda teardown: _run(options, report, teardown, progress), progress
    )


def _run(
    options: LabOptions,
    report: ExamplesReport,
    teardown: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> None:
    lab = start_lab(options, report, teardown, progress, options.timeout + PROCESS_MARGIN)
    site = _start_site(lab, report.results)
    progress(f"site: DNS answers {SITE_HOST} with {lab.net.site_ip}, nginx serves it on port 80")
    runs = [ExampleRun(example, vm) for example, vm in zip(EXAMPLES, lab.vms, strict=True)]
    report.runs = runs
    for one in runs:
        _use_example(lab, one)
    teardown.callback(_discard_extra_disks, runs)
    for one in runs:
        vm = one.vm
        numbers = range(2, one.example.disks + 1)
        extra = [arg for n in numbers for arg in qemu.extra_disk_args(vm.spec, n)]
        vm.process = qemu.power_on(vm.spec, lab.net, lab.max_seconds, extra=extra)
        vm.powered_on = datetime.now(UTC)
        one.started = vm.process.started
        teardown.callback(vm.process.stop)
        vm.watcher = SerialWatcher(vm.spec.serial_log, vm.timeline, vm.process.started).start()
        teardown.callback(vm.watcher.stop)
        progress(f"{vm.spec.name}: {one.example.file}, {vm.timeline.firmware}, "
                 f"{one.example.disks} SATA disks")  # fmt: skip
    _wait(runs, options.timeout, progress)
    for one in runs:
        assert one.vm.watcher is not None
        one.vm.watcher.read_once(final=True)
        observe(one)
        one.checks = _checks(lab, site, report.results, one)
    report.checks = [check for one in runs for check in one.checks]
    report.ok = all(one.ok for one in runs)
    if not report.ok:
        failed = [c.name for c in report.checks if not c.ok]
        report.failed_step = failed[0] if failed else "no check ran"


def _start_site(lab: LabRun, results: Path) -> SiteWeb:
    """The site's web server: the lab's release as ``/xcp-ng/``, the lab's script folder as
    ``/myscripts/`` (with the marker the script asks for, so it gets a 200)."""
    scripts = results / "site-scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "post-install-script").write_text(POST_INSTALL_SCRIPT)
    (scripts / MARKER_PATH.rsplit("/", 1)[1]).write_text("seen\n")
    release = (lab.server_spec.data_dir / "releases" / RELEASE).resolve()
    site, server = start_site_web(
        lab.net, results, {"/xcp-ng/": release, "/myscripts/": scripts}, lab.max_seconds
    )
    lab.teardown.callback(server.stop)
    return site


def _use_example(lab: LabRun, one: ExampleRun) -> None:
    """A profile whose template is the example's text, unchanged, and the VM's host on it."""
    text = one.example.text.decode()
    lab.api.post("/api/v1/profiles", {
        "name": one.example.profile, "release": RELEASE, "template": text,
        "kernel_args": INSTALLER_ARGS,
    })  # fmt: skip
    lab.api.call("PATCH", f"/api/v1/hosts/{one.vm.host_id}", {"profile": one.example.profile})


def _discard_extra_disks(runs: list[ExampleRun]) -> None:
    for one in runs:
        for number in range(2, one.example.disks + 1):
            qemu.extra_disk(one.vm.spec, number).unlink(missing_ok=True)


def observe(one: ExampleRun) -> None:
    """Mark the serial proofs seen so far: each counts only after the installer's success, and
    everything from Xen's banner on only after GRUB's menu, in the installed system's boot."""
    try:
        text = clean(one.vm.spec.serial_log.read_text(errors="replace"))
    except FileNotFoundError:
        return
    start = text.find(INSTALLER_EXIT_0)
    if start < 0:
        return
    one.mark("installer exit 0", INSTALLER_EXIT_0)
    one.vm.timeline.mark(Stage.INSTALL_DONE, one.seen["installer exit 0"],
                         f"serial: {INSTALLER_EXIT_0}")  # fmt: skip
    grub = text.find(f"{MENU_TITLE} (Serial)", start)
    if grub < 0:
        return
    one.mark("GRUB menu", f"{MENU_TITLE} (Serial)")
    xen = _XEN.search(text, grub)
    if xen is None:
        return
    one.mark("Xen banner", xen.group(0))
    lines = [(proof, re.compile(rf"^.*{pattern}.*$", re.MULTILINE))
             for proof, pattern in one.example.dom0_lines]  # fmt: skip
    lines.append(("dom0 login prompt", _LOGIN))
    if one.example.has_post_install_script:
        lines.append((CONSOLE_PROOF, _PROOF_LINE))
    for proof, pattern in lines:
        found = pattern.search(text, xen.end())
        if found:
            one.mark(proof, found.group(0))


_XEN = re.compile(r"^.*Xen version \d+\.\d+.*$", re.MULTILINE)
_LOGIN = re.compile(r"^\S+ login:(?: |$)", re.MULTILINE)
_PROOF_LINE = re.compile(rf"^{re.escape(PROOF)}.*$", re.MULTILINE)


def _wait(runs: list[ExampleRun], timeout: float, progress: Callable[[str], None]) -> None:
    """Until every VM showed every proof, one broke or stopped, or the deadline passed."""
    deadline = time.monotonic() + timeout
    said: dict[str, str] = {}
    while time.monotonic() < deadline:
        for one in runs:
            observe(one)
            last = next((p for p in reversed(one.proofs) if p in one.seen), "")
            if last and said.get(one.vm.spec.name) != last:
                said[one.vm.spec.name] = last
                progress(f"{one.vm.spec.name}: {last} at {one.seen[last]:.0f} s")
        if all(len(one.seen) == len(one.proofs) for one in runs):
            return
        for one in runs:
            process = one.vm.process
            if one.vm.timeline.fatal:
                progress(f"{one.vm.spec.name}: broken: {one.vm.timeline.fatal}")
                return
            if process is not None and not process.running():
                progress(f"{one.vm.spec.name}: QEMU stopped: {process.log_tail(2)}")
                return
        time.sleep(POLL_SECONDS)
    progress(f"deadline of {timeout:.0f} s passed")


def _checks(lab: LabRun, site: SiteWeb, results: Path, one: ExampleRun) -> list[Check]:
    name = f"{one.vm.spec.name} ({one.example.file})"
    checks = []
    for proof in one.proofs:
        evidence = one.evidence.get(proof, "absent")
        ok = proof in one.seen
        if proof == CONSOLE_PROOF:  # the script's line must carry the example's digest too
            ok = ok and _sha256(one.example.text) in evidence
        checks.append(Check(f"{name} {proof}", ok, evidence))
    checks.append(_boot_path(lab, one, name))
    checks.append(_answerfile_unchanged(lab, results, one, name))
    checks += _site_checks(results, site, one, name)
    return checks


def _boot_path(lab: LabRun, one: ExampleRun, name: str) -> Check:
    """The first network boot our server recorded is the one the firmware was set up for."""
    events = lab.api.get(f"/api/v1/hosts/{one.vm.host_id}/events?limit=1000").get("events", [])
    paths = [str(e.get("step")) for e in events if e.get("kind") == "boot"]
    expected = EXPECTED_BOOT_PATH[one.vm.timeline.firmware]
    return Check(f"{name} network boot from our server", paths[:1] == [expected],
                 f"recorded {', '.join(paths) or 'none'}; expected {expected}")  # fmt: skip


_ANSWERFILE_URL = re.compile(r"answerfile=(\S+)")


def _answerfile_unchanged(lab: LabRun, results: Path, one: ExampleRun, name: str) -> Check:
    """The answer file our server hands this host, fetched back as its installer fetches it,
    is the example byte for byte. The install's token is bound to the VM's address, so the lab
    starts a new install of the host (no power: the VM is not touched), asks for the host's
    iPXE script as the host would, and fetches the answer file its command line names."""
    expected = one.example.text
    try:
        lab.api.post(f"/api/v1/hosts/{one.vm.host_id}/reinstall", {})
        base = lab.server_spec.base_url(lab.net)
        script = _curl(
            lab,
            f"{base}/boot/ipxe?mac={one.vm.spec.mac}",
            results / f"fetched-{one.example.profile}.ipxe",
        )
        found = _ANSWERFILE_URL.search(script.decode(errors="replace"))
        if found is None:
            why = f"the host's iPXE script names no answer file: {script[:200]!r}"
            return Check(f"{name} answer file unchanged", False, why)
        got = _curl(lab, found.group(1), results / f"fetched-{one.example.file}")
    except LabError as exc:
        return Check(f"{name} answer file unchanged", False, str(exc))
    same = got == expected
    detail = (f"{len(got)} bytes, sha256 {_sha256(got)}, identical to {one.example.file}" if same
              else f"got {len(got)} bytes sha256 {_sha256(got)}; the example has {len(expected)} "
              f"bytes sha256 {_sha256(expected)}")  # fmt: skip
    return Check(f"{name} answer file unchanged", same, detail)


def _curl(lab: LabRun, url: str, out: Path) -> bytes:
    """The body of GET ``url`` from our server's side of the lab, as the bytes on the wire
    (kept in ``out``, in the results)."""
    argv = [*lab.net.exec_prefix(), "curl", "-sS", "-f", "--max-time", "30", "-o", out, url]
    result = run(argv, check=False)
    if result.returncode != 0:
        raise LabError("answer file", f"GET {url} failed: {result.stderr.strip()}")
    return out.read_bytes()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _site_checks(results: Path, site: SiteWeb, one: ExampleRun, name: str) -> list[Check]:
    """What the site's DNS and web server saw from this VM's installer."""
    address = leases(results / "dnsmasq.leases").get(one.vm.spec.mac.lower(), "")
    queries = [line for line in _lines(results / "dnsmasq.log")
               if f"query[A] {SITE_HOST} from {address}" in line]  # fmt: skip
    mine = [line for line in site.requests() if address and line.startswith(f"{address} ")]
    manifest = [line for line in mine if '"GET /xcp-ng/manifest.json ' in line and '" 200 ' in line]
    checks = [
        Check(f"{name} resolved {SITE_HOST} through the site's DNS", bool(queries),
              queries[0] if queries else f"no query for {SITE_HOST} from {address or '?'}"),
        Check(f"{name} release read from {SITE_HOST}/xcp-ng/", bool(manifest),
              manifest[0] if manifest else f"{len(mine)} requests from {address or '?'}"),
    ]  # fmt: skip
    if one.example.has_post_install_script:
        digest = _sha256(one.example.text)
        script = [line for line in mine if '"GET /myscripts/post-install-script ' in line]
        marker = [line for line in mine if f'"GET {MARKER_PATH}?' in line]
        proved = [line for line in marker if f"answerfile-sha256={digest}" in line]
        checks += [
            Check(f"{name} post-install-script fetched from {SITE_HOST}", bool(script),
                  script[0] if script else "never requested"),
            Check(f"{name} post-install-script ran with the target root and saw the example",
                  bool(proved) and "stage=filesystem-populated&root=/" in proved[0],
                  (proved or marker or ["no marker request"])[0]),
        ]  # fmt: skip
    return checks


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
