"""The examples lab's parts that need no VM: the examples it ships, the answer file a profile
made of one renders, the site's DNS and web server, and its report (test_lab_examples.py runs
the whole lab)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from answerfiles.render import render_template
from common.runner import run
from lab import dnsmasq, netns
from lab.examples import (
    EXAMPLES,
    EXAMPLES_DIR,
    POST_INSTALL_SCRIPT,
    SITE_HOST,
    Example,
    ExampleRun,
    ExamplesReport,
    observe,
)
from lab.harness import Check, VmRun
from lab.qemu import VmSpec
from lab.site_web import start_site_web
from lab.timeline import Stage, Timeline, scan_text

VALID = Path(__file__).parents[1] / "answerfiles" / "valid"
# Asks the site's DNS (its address as argv[1]) for pxehost's address, from the lab's namespace.
RESOLVE = f"""
import sys, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [sys.argv[1]]
print(resolver.resolve("{SITE_HOST}", "A")[0])
"""


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.file)
def test_the_lab_ships_the_documentation_examples_unchanged(example: Example) -> None:
    assert (EXAMPLES_DIR / example.file).read_bytes() == (VALID / example.file).read_bytes()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.file)
def test_an_example_as_a_profile_template_renders_to_itself_byte_for_byte(
    tmp_path: Path,
    example: Example,
) -> None:
    template = tmp_path / f"{example.profile}.xml.j2"
    template.write_bytes(example.text)
    variables = {"server_url": "http://10.99.0.1:8080", "token": "xpi_t", "pool": "",
                 "hostname": "lab-vm1", "primary_disk": "sda", "mac": "52:54:00:00:00:01",
                 "source_url": "http://10.99.0.1:8080/releases/lab/"}  # fmt: skip
    assert render_template(str(template), variables).encode() == example.text


def test_the_examples_name_the_disks_the_lab_gives_their_vms() -> None:
    fresh, raid = EXAMPLES
    assert fresh.disks == 3 and all(f">{d}<".encode() in fresh.text for d in ("sda", "sdb", "sdc"))
    assert raid.disks == 2 and b"<disk>sdb</disk>" in raid.text and b"sdc" not in raid.text
    assert fresh.has_post_install_script and not raid.has_post_install_script


def test_the_post_install_script_is_a_shell_script(tmp_path: Path) -> None:
    script = tmp_path / "post-install-script"
    script.write_text(POST_INSTALL_SCRIPT)
    assert POST_INSTALL_SCRIPT.startswith("#!/bin/sh\n")
    assert run(["sh", "-n", script], check=False).returncode == 0


@pytest.mark.root
def test_the_site_resolves_pxehost_to_itself_and_serves_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    release = tmp_path / "release"
    release.mkdir()
    (release / "manifest.json").write_bytes(b'{"name": "lab"}\n')
    net = netns.create("10.97.0.0/24")
    try:
        site_dhcp = dnsmasq.start_site_dhcp(net, tmp_path, 120, names=(SITE_HOST,))
        try:
            site, web = start_site_web(net, tmp_path, {"/xcp-ng/": release}, 120)
            try:
                answer = run([*net.exec_prefix(), sys.executable, "-c", RESOLVE, net.site_ip])
                assert answer.stdout.strip() == net.site_ip
                url = f"http://{SITE_HOST}/xcp-ng/manifest.json"
                resolve = f"{SITE_HOST}:80:{answer.stdout.strip()}"
                body = run([*net.exec_prefix(), "curl", "-sSf", "--resolve", resolve, url])
                assert body.stdout == '{"name": "lab"}\n'
            finally:
                web.stop()
        finally:
            site_dhcp.stop()
    finally:
        netns.destroy(net)
    log = (tmp_path / "dnsmasq.log").read_text()
    assert f"query[A] {SITE_HOST} from {net.server_ip}" in log
    assert f"config {SITE_HOST} is {net.site_ip}" in log
    assert f"{net.server_ip} - - " in site.access_log.read_text()
    assert '"GET /xcp-ng/manifest.json HTTP/1.1" 200' in site.access_log.read_text()


def test_dnsmasq_serves_dns_and_names_itself_the_resolver_only_when_given_names() -> None:
    net = netns.LabNetwork("ns", "br", netns.ipaddress.IPv4Network("10.99.0.0/24"))
    plain = dnsmasq.command(net, Path("/tmp/leases"), 60)
    assert "--port=0" in plain and not any("dns-server" in a for a in plain)
    named = dnsmasq.command(net, Path("/tmp/leases"), 60, (SITE_HOST,))
    assert "--port=0" not in named
    assert f"--host-record={SITE_HOST},10.99.0.2" in named
    assert "--dhcp-option=option:dns-server,0.0.0.0" in named and "--no-resolv" in named


def test_the_report_has_a_verdict_line_per_example(tmp_path: Path) -> None:
    report = ExamplesReport(tmp_path)
    for i, example in enumerate(EXAMPLES, start=1):
        spec = VmSpec(f"lab-vm{i}", f"52:54:00:00:00:0{i}", f"tap{i}", tmp_path)
        one = ExampleRun(example, VmRun(spec, Timeline(spec.name, example.firmware)))
        one.checks = [Check("a", True), Check("b", i == 1)]
        report.runs.append(one)
    report.failed_step = "b"
    lines = report.summary().splitlines()
    assert "example xcpng-doc-fresh.xml (lab-vm1, uefi): PASS" in lines
    assert "example xcpng-raid.xml (lab-vm2, bios): FAIL at b" in lines
    assert lines[-1] == f"xcp-ng examples lab: FAIL at b (results in {tmp_path})"
    data = json.loads(report.to_json())
    assert [e["ok"] for e in data["examples"]] == [True, False]


# The lines of a real run's serial log the examples lab reads (lab-vm2, the RAID example), in
# their order, with some of what surrounds them.
RAID_SERIAL = """\
xcp-installer: running xcp-install
writing dom0-rootfs.tar.zst \x1b[38;5;237m━━━━━━━━━━━━━━\x1b[0m  59%\r
xcp-installer: xcp-install exited with status 0
xcp-installer: rebooting
GNU GRUB  version 2.06-13+deb12u2
      XCP-provision                                   *XCP-provision (Serial)
(XEN) Xen version 4.17.7 (Debian 4.17.7+13-g2445b30a44-0+deb12u1) (pkg-xen-devel@lists)
[   25.208825] md/raid1:md127: active with 2 out of 2 mirrors
[   37.660253] EXT4-fs (md127p1): mounted filesystem with ordered data mode. Quota mode: none.
Debian GNU/Linux 12 localhost.localdomain hvc0

localhost login: """


def _raid_run(tmp_path: Path, text: str) -> ExampleRun:
    spec = VmSpec("lab-vm2", "52:54:00:00:00:02", "tap2", tmp_path)
    spec.serial_log.write_text(text)
    one = ExampleRun(EXAMPLES[1], VmRun(spec, Timeline(spec.name, "bios")))
    scan_text(one.vm.timeline, text, 1.0)  # what the run's SerialWatcher does
    observe(one)
    return one


def test_the_serial_console_proves_each_step_of_the_raid_example(tmp_path: Path) -> None:
    one = _raid_run(tmp_path, RAID_SERIAL)
    assert list(one.seen) == list(one.proofs)
    assert one.proofs == ("installer exit 0", "GRUB menu", "Xen banner", "md127 mirrors both disks",
                          "dom0 root on md127p1", "dom0 login prompt")  # fmt: skip
    assert one.evidence["dom0 login prompt"] == "localhost login:"
    assert one.vm.timeline.reached(Stage.INSTALL_DONE)


def test_nothing_after_the_install_counts_without_the_installers_success(tmp_path: Path) -> None:
    failed = RAID_SERIAL.replace("exited with status 0", "exited with status 1")
    assert _raid_run(tmp_path, failed).seen == {}


def test_a_dom0_on_one_disk_does_not_prove_the_mirror(tmp_path: Path) -> None:
    one = _raid_run(tmp_path, RAID_SERIAL.replace("2 out of 2", "1 out of 2"))
    assert "md127 mirrors both disks" not in one.seen
    assert "dom0 login prompt" in one.seen
