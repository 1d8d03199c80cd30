"""``xcp-install --answerfile URL --target-disk FILE`` as a subprocess: exit codes and output.

Exit 2 promises that nothing was written: the image's bytes are hashed before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import small_release
from support.release_server import ReleaseServer

pytestmark = pytest.mark.root
GIB = 1 << 30
XCP_INSTALL = Path(sys.executable).parent / "xcp-install"

ANSWERS = """<?xml version="1.0"?>
<installation xmlns:xp="urn:xcp-provision:answerfile:1">
    <primary-disk>sda</primary-disk>
    <source type="url">{url}/{release}</source>
    <admin-interface name="eth0" proto="dhcp"/>
    <hostname>cli-host</hostname>
    <xp:server-url>{url}</xp:server-url>
    <xp:token>cli-token</xp:token>
</installation>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseServer]:
    top = tmp_path_factory.mktemp("cli")
    small_release.build(top / "release")
    for release in ("release", "missing"):
        (top / f"{release}.xml").write_text(ANSWERS.format(url="URL", release=release))
    (top / "broken.xml").write_text("<installation><primary-disk>sda</primary-disk>")
    with ReleaseServer(top) as srv:
        for release in ("release", "missing"):
            (top / f"{release}.xml").write_text(ANSWERS.format(url=srv.url, release=release))
        yield srv


def _image(tmp_path: Path, gib: int = 60) -> Path:
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(gib * GIB)
    return image


def _digest(image: Path) -> str:
    """sha256 over the data extents of a sparse image (holes read as zeros anyway)."""
    digest = hashlib.sha256()
    fd = os.open(image, os.O_RDONLY)
    try:
        end, offset = os.fstat(fd).st_size, 0
        while offset < end:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, offset, os.SEEK_HOLE)
            digest.update(offset.to_bytes(8, "little"))
            while offset < hole:
                chunk = os.pread(fd, min(1 << 24, hole - offset), offset)
                digest.update(chunk)
                offset += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(XCP_INSTALL), *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_unattended_install_exits_0_with_json_events(server: ReleaseServer, tmp_path: Path):
    image = _image(tmp_path)
    proc = _run("--answerfile", f"{server.url}/release.xml", "--target-disk", str(image),
                "--boot-mode", "bios", "--json-events")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1] == {"done": True}
    assert {"step", "percent", "message"} <= set(lines[0])
    assert any(line.get("step") == "bootloader" for line in lines)
    with open(image, "rb") as fh:
        assert fh.read(512)[0x1FE:] == b"\x55\xaa"
    done = [p for p in server.posts if p.path == "/api/v1/installs/done"]
    assert done and done[-1].authorization == "Bearer cli-token"


@pytest.mark.parametrize(
    ("answerfile", "gib", "says"),
    [
        ("release.xml", 20, "too small"),
        ("missing.xml", 60, "no release at"),
        ("broken.xml", 60, "broken.xml"),
        ("absent.xml", 60, "HTTP 404"),
    ],
)
def test_refusals_exit_2_and_write_nothing(
    server: ReleaseServer, tmp_path: Path, answerfile: str, gib: int, says: str
) -> None:
    image = _image(tmp_path, gib)
    before = _digest(image)
    proc = _run("--answerfile", f"{server.url}/{answerfile}", "--target-disk", str(image),
                "--boot-mode", "uefi")
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert _digest(image) == before


def test_corrupt_release_exits_1(server: ReleaseServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    small_release.build(bad)
    art = json.loads((bad / "manifest.json").read_text())["artefacts"][1]
    data = bytearray((bad / art["path"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / art["path"]).write_bytes(bytes(data))
    answers = tmp_path / "bad.xml"
    answers.write_text(
        ANSWERS.format(url=server.url, release="bad").replace(
            f"{server.url}/bad", f"file://{tmp_path}/bad"
        )
    )
    image = _image(tmp_path)
    proc = _run("--answerfile", str(answers), "--target-disk", str(image), "--boot-mode", "bios")
    assert proc.returncode == 1
    assert "corrupt" in proc.stderr and art["path"] in proc.stderr


def test_without_any_answer_file_it_refuses(tmp_path: Path) -> None:
    image = _image(tmp_path)
    proc = _run("--target-disk", str(image))
    assert proc.returncode == 2
    assert "no answer file" in proc.stderr


def test_upgrade_and_restore_answer_files_choose_the_mode(
    server: ReleaseServer, tmp_path: Path
) -> None:
    image = _image(tmp_path)
    common = ("--target-disk", str(image), "--boot-mode", "bios")
    assert _run("--answerfile", f"{server.url}/release.xml", *common).returncode == 0
    restore = tmp_path / "restore.xml"
    restore.write_text("<restore/>")
    refused = _run("--answerfile", str(restore), *common)
    assert refused.returncode == 2 and "no backup partition" in refused.stderr
    upgrade = tmp_path / "upgrade.xml"
    upgrade.write_text(
        '<installation mode="upgrade"><existing-installation>sda</existing-installation>'
        f'<source type="url">{server.url}/release</source></installation>'
    )
    done = _run("--answerfile", str(upgrade), *common)
    assert done.returncode == 0, done.stderr
    assert _run("--answerfile", str(restore), *common).returncode == 0
    mismatch = _run("--answerfile", str(restore), "--target-disk", str(image),
                    "--boot-mode", "uefi")
    assert mismatch.returncode == 2 and "firmware" in mismatch.stderr
