"""Stage scripts in an upgrade and a restore, run as XCP-ng runs them in every mode.

A loop disk gets a fresh install, then an upgrade and a restore whose answer files carry scripts
served over HTTP; one script records each call (stage and arguments), so the order, the
arguments and the outcome passed to ``installation-complete`` are read back from its log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

from answerfiles.parse import parse_answerfile
from installer import install, modes
from installer.block import loop
from installer.mounts import mounted
from installer.plan import BootMode

pytestmark = pytest.mark.root
GIB = 1 << 30

FRESH = """<installation>
    <primary-disk>sda</primary-disk>
    <source type="url">{url}/r1</source>
    <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""
UPGRADE = """<installation mode="upgrade">
    <existing-installation>sda</existing-installation>
    <source type="url">{url}/r2</source>
    <script stage="installation-start" type="url">{url}/scripts/record</script>
    <post-install-script>{url}/scripts/record</post-install-script>
    <install-failed-script>{url}/scripts/record</install-failed-script>
</installation>
"""
RESTORE = """<restore>
    <script stage="installation-start" type="url">{url}/scripts/record</script>
    <script stage="installation-complete" type="url">{url}/scripts/record</script>
</restore>
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReleaseServer, Path]]:
    top = tmp_path_factory.mktemp("served")
    small_release.build(top / "r1", version="1.0")
    small_release.build(top / "r2", version="2.0")
    (top / "scripts").mkdir()
    calls = top / "calls.log"
    (top / "scripts/record").write_text(
        f'#!/bin/sh\necho "$XS_STAGE|$*" >> {calls}\n'
        'if [ "$XS_STAGE" = filesystem-populated ]; then touch "$1/populated-marker"; fi\n'
    )
    with ReleaseServer(top) as srv:
        yield srv, calls


def _answers(text: str, url: str):
    return parse_answerfile(text.format(url=url), "t.xml").answers


def _calls(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_a_refused_restore_still_tells_its_scripts_it_failed(served, tmp_path: Path) -> None:
    srv, log = served
    image = tmp_path / "blank.img"
    with open(image, "wb") as fh:
        fh.truncate(1 * GIB)
    _calls(log)
    with pytest.raises(modes.ModeRefusedError, match="no backup partition was found"):
        modes.restore(_answers(RESTORE, srv.url), target=str(image), boot_mode=BootMode.BIOS)
    assert _calls(log) == ["installation-start|", "installation-complete|1"]


def test_an_upgrade_then_a_restore_run_every_stage(served, tmp_path: Path) -> None:
    srv, log = served
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    install.install(_answers(FRESH, srv.url), target=str(image), boot_mode=BootMode.BIOS)
    _calls(log)

    modes.upgrade(_answers(UPGRADE, srv.url), target=str(image), boot_mode=BootMode.BIOS)
    calls = _calls(log)
    assert [c.split("|")[0] for c in calls] == [
        "installation-start",
        "filesystem-populated",
        "installation-complete",
    ]
    assert calls[0] == "installation-start|" and calls[2] == "installation-complete|0"
    with loop.attached(str(image)) as device, mounted(loop.refresh(device)[1]) as root:
        assert (root / "populated-marker").is_file()  # the script got the new root's mount

    modes.restore(_answers(RESTORE, srv.url), target=str(image), boot_mode=BootMode.BIOS)
    assert _calls(log) == ["installation-start|", "installation-complete|0"]
