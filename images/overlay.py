"""What xcp-provision adds to a dom0 root filesystem, in one place.

The real image (debootstrap) and the demo image (a tiny skeleton) both call
:func:`install_overlay`, so the installer meets the same agent, unit, network layout and console
setup whichever it lays down.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from common import dom0_layout
from common.dom0_layout import inside
from dom0 import firstboot

FIRSTBOOT_DIR = Path(firstboot.__file__).parent
AGENT_SOURCE = FIRSTBOOT_DIR / "agent.py"
UNIT_SOURCE = FIRSTBOOT_DIR / dom0_layout.UNIT_NAME
REPORT_SOURCES = {
    dom0_layout.REPORT_UNIT: FIRSTBOOT_DIR / dom0_layout.REPORT_UNIT_NAME,
    dom0_layout.REPORT_TIMER: FIRSTBOOT_DIR / dom0_layout.REPORT_TIMER_NAME,
}


def _symlink(root: Path, link: str, target: str) -> None:
    path = inside(root, link)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)


def install_overlay(root: Path, release_name: str) -> None:
    """Install and enable the first-boot agent, its health report unit and timer, the network
    base config and the hvc0 getty."""
    agent = inside(root, dom0_layout.AGENT)
    agent.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(AGENT_SOURCE, agent)
    agent.chmod(0o755)
    unit = inside(root, dom0_layout.UNIT)
    unit.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UNIT_SOURCE, unit)
    unit.chmod(0o644)
    _symlink(root, dom0_layout.UNIT_WANTS, dom0_layout.UNIT)
    for target, source in REPORT_SOURCES.items():  # health reports, after the first boot
        shutil.copyfile(source, inside(root, target))
        inside(root, target).chmod(0o644)
    _symlink(root, dom0_layout.REPORT_UNIT_WANTS, dom0_layout.REPORT_UNIT)
    _symlink(root, dom0_layout.REPORT_TIMER_WANTS, dom0_layout.REPORT_TIMER)
    inside(root, dom0_layout.POOL_JOIN_HOOK).parent.mkdir(parents=True, exist_ok=True)
    inside(root, dom0_layout.RELEASE_FILE).write_text(release_name + "\n")

    inside(root, dom0_layout.NETWORK_INTERFACES_DIR).mkdir(parents=True, exist_ok=True)
    inside(root, dom0_layout.NETWORK_INTERFACES).write_text(dom0_layout.BASE_INTERFACES)
    _symlink(root, dom0_layout.NAMING_POLICY_MASK, "/dev/null")
    _symlink(root, dom0_layout.HVC0_GETTY, dom0_layout.SERIAL_GETTY_UNIT)
    _append_line(inside(root, dom0_layout.DHCLIENT_CONF), dom0_layout.DHCLIENT_IDENTIFIER)


def _append_line(path: Path, line: str) -> None:
    """``line`` at the end of ``path`` (made if absent), once however often the overlay runs."""
    text = path.read_text() if path.exists() else ""
    if line in text.splitlines():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n")
