"""``<source type="local"/>``: a release on an attached medium labelled XCP_RELEASE.

The media here are real ext4 filesystems on loop devices, found by label, mounted read-only for
the install's length and never chosen as the install target.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from support import small_release
from support.gpg_keys import site_keys

from answerfiles.parse import parse_answerfile
from common.release import LOCAL_MEDIA_LABEL, SIGNATURE
from common.runner import run
from images.signing import sign_release
from installer import install, local_media
from installer.block import loop
from installer.mounts import mounted
from installer.plan import BootMode
from installer.release import load_release, open_source

pytestmark = pytest.mark.root

GIB = 1 << 30
LOCAL = """<?xml version="1.0"?>
<installation>
    <primary-disk>sda</primary-disk>
    <source type="local"/>
    <admin-interface name="eth0" proto="dhcp"/>
    <hostname>from-the-stick</hostname>
</installation>
"""


@contextlib.contextmanager
def medium(
    tmp_path: Path,
    name: str = "medium",
    *,
    release: bool = True,
    signed_by: tuple[str, Path] | None = None,
) -> Iterator[str]:
    """An ext4 filesystem labelled XCP_RELEASE on a loop device, holding a small release."""
    tree = tmp_path / name
    tree.mkdir()
    if release:
        small_release.build(tree)
    if signed_by:
        sign_release(tree, *signed_by)
    image = tmp_path / f"{name}.img"
    run(["mkfs.ext4", "-q", "-L", LOCAL_MEDIA_LABEL, "-d", tree, image, "16M"])
    with loop.attached(image) as device:
        yield device


def _answers():
    return parse_answerfile(LOCAL, "local.xml").answers


def _mount_options(device: str) -> list[str] | None:
    """The options ``device`` is mounted with, None when it is not mounted."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[0] == device:
            return fields[3].split(",")
    return None


def test_the_medium_is_found_read_only_and_let_go_after(tmp_path: Path) -> None:
    with medium(tmp_path) as device:
        with ExitStack() as media:
            source = open_source(_answers(), media)
            base = Path(source.base)
            base_url, manifest = load_release(_answers(), source, keyring=None)
            assert "ro" in _mount_options(device)
            with pytest.raises(OSError) as written:
                (base / "scribble").write_text("no")
            assert written.value.errno == errno.EROFS
        assert not base.exists()  # unmounted, mount point removed
        assert _mount_options(device) is None
    assert device in source.disks
    assert base_url == str(base) and manifest.name == "test"


def test_a_signed_release_on_the_medium_is_checked(tmp_path: Path) -> None:
    with (
        site_keys("site") as keys,
        medium(tmp_path, signed_by=(keys["site"].fingerprint, keys["site"].home)),
        ExitStack() as media,
    ):
        source = open_source(_answers(), media)
        assert (Path(source.base) / SIGNATURE).is_file()
        _, manifest = load_release(_answers(), source, keyring=keys["site"].keyring)
    assert manifest.name == "test"


def test_no_medium_is_a_refusal_that_says_what_to_attach() -> None:
    assert local_media.find_devices() == ()
    with ExitStack() as media, pytest.raises(local_media.LocalMediaError) as refused:
        open_source(_answers(), media)
    assert f"no filesystem labelled {LOCAL_MEDIA_LABEL} is attached" in str(refused.value)
    assert refused.value.exit_code == 2


def test_two_media_are_ambiguous(tmp_path: Path) -> None:
    with (
        medium(tmp_path, "one") as first,
        medium(tmp_path, "two") as second,
        ExitStack() as media,
        pytest.raises(local_media.LocalMediaError) as refused,
    ):
        open_source(_answers(), media)
    message = str(refused.value)
    assert "2 filesystems are labelled" in message and first in message and second in message


def test_a_medium_without_a_release_is_refused_and_unmounted(tmp_path: Path) -> None:
    with medium(tmp_path, release=False) as device:
        with ExitStack() as media, pytest.raises(local_media.LocalMediaError) as refused:
            open_source(_answers(), media)
        assert _mount_options(device) is None
    assert "has no manifest.json at its top" in str(refused.value)


def test_an_install_from_the_medium_and_never_onto_it(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    with medium(tmp_path) as device:
        with pytest.raises(install.RefusedError, match="installer is running from"):
            install.install(_answers(), target=device, boot_mode=BootMode.BIOS)
        result = install.install(_answers(), target=str(image), boot_mode=BootMode.BIOS)
    assert device in result.plan.installer_disks
    with loop.attached(image) as disk:
        nodes = loop.refresh(disk)
        with mounted(nodes[1]) as root:
            assert (root / "boot/xen-4.17.gz").is_file()
            assert (root / "usr/bin/xcp-dom0-marker").is_file()
            assert (root / "etc/hostname").read_text() == "from-the-stick\n"
