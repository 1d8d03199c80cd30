"""XCP-ng 8.3's documentation answer files install here unchanged, for real: a UEFI VM with three
SATA disks installs the fresh-install example, a BIOS VM with two the RAID1 example, both from
the site's ``pxehost.example.com`` that the lab plays (its DNS and its nginx).

Builds (or reuses from the cache) the real release, then two installs and two Xen boots under
TCG at once: far beyond ``make test``'s budget, so it is collected only when named
(``tests/e2e/conftest.py``); ``make e2e-examples`` runs the same lab through its command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.runner import run
from lab.examples import EXAMPLES, MARKER_PATH, SITE_HOST, run_examples
from lab.harness import LabOptions
from lab.timeline import Stage

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.mark.timeout(7200)
def test_the_documentation_examples_install_unchanged_and_boot_xen_and_dom0(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, tap devices)")
    results = tmp_path / "results"
    lines: list[str] = []
    report = run_examples(LabOptions(results=results, timeout=2400), progress=lines.append)
    print("\n".join(lines))
    print(report.summary())
    assert report.ok, report.summary()
    assert [one.example for one in report.runs] == list(EXAMPLES)
    for one in report.runs:
        assert one.ok, one.checks
        seen = one.seen
        assert set(seen) == set(one.proofs)
        assert seen["installer exit 0"] <= seen["GRUB menu"] <= seen["Xen banner"]
        assert seen["Xen banner"] <= seen["dom0 login prompt"]
        assert one.evidence["Xen banner"].startswith("(XEN)")
        assert one.vm.timeline.seen[Stage.INSTALLER] < one.vm.timeline.seen[Stage.XEN]
        # Without xp:provisioning the host never reports to our server.
        assert Stage.REGISTERED not in one.vm.timeline.seen
        fetched = results / f"fetched-{one.example.file}"
        assert fetched.read_bytes() == one.example.text
    fresh = report.runs[0]
    assert "sha256" in fresh.evidence["post-install proof on the console"]
    access = (results / "site-web" / "access.log").read_text()
    assert access.count('"GET /xcp-ng/manifest.json HTTP/1.1" 200') >= len(EXAMPLES)
    assert f'"GET {MARKER_PATH}?stage=filesystem-populated&root=/' in access
    assert f"query[A] {SITE_HOST}" in (results / "dnsmasq.log").read_text()
    summary = (results / "summary.txt").read_text()
    for example in EXAMPLES:
        assert f"example {example.file} " in summary
    assert not list(results.glob("*.qcow2")), "virtual disks must not be kept"
    assert f"xcplab-{os.getpid()}-" not in run(["ip", "netns", "list"]).stdout
