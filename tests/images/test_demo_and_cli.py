"""The demo release and the `images` commands, through the real CLI."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import zstandard
from click.testing import CliRunner

from common import dom0_layout, release
from common.release import ArtefactKind
from images.cache import BuildCache
from images.demo import PLACEHOLDER_VERSION, build_demo_release
from xcp_provision.main import main


def _images(cli: CliRunner, *args: str):
    return cli.invoke(main, ["images", *args], catch_exceptions=False)


def test_demo_release_is_complete_and_verifies(tmp_path: Path, empty_cache: BuildCache) -> None:
    manifest = build_demo_release(tmp_path / "demo", empty_cache)
    assert {a.kind for a in manifest.artefacts} == set(ArtefactKind)
    assert manifest.notes["demo"] == "true"
    assert release.load(tmp_path / "demo") == manifest
    assert release.verify(tmp_path / "demo") == []
    xen = manifest.artefact(ArtefactKind.HYPERVISOR)
    assert xen.version == PLACEHOLDER_VERSION
    assert b"DEMO PLACEHOLDER" in gzip.decompress((tmp_path / "demo" / xen.path).read_bytes())
    kernel = manifest.artefact(ArtefactKind.INSTALLER_KERNEL)
    assert (tmp_path / "demo" / kernel.path).read_bytes().startswith(b"XCP-PROVISION DEMO")


def test_demo_rootfs_has_the_real_layout(tmp_path: Path, empty_cache: BuildCache) -> None:
    manifest = build_demo_release(tmp_path / "demo", empty_cache)
    archive = tmp_path / "demo" / manifest.artefact(ArtefactKind.DOM0_ROOTFS).path
    data = zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert all(name == "." or name.startswith("./") for name in members)
        for directory in ("./boot", "./etc", "./usr/bin", "./var/log", "./root", "./tmp"):
            assert members[directory].isdir(), directory
        assert members["./bin"].issym()
        assert members["." + dom0_layout.UNIT_WANTS].linkname == dom0_layout.UNIT
        assert members["." + dom0_layout.HVC0_GETTY].linkname == dom0_layout.SERIAL_GETTY_UNIT
        assert members["." + dom0_layout.NAMING_POLICY_MASK].linkname == "/dev/null"
        dhclient = tar.extractfile(members["." + dom0_layout.DHCLIENT_CONF]).read().decode()
        assert dhclient.splitlines() == [dom0_layout.DHCLIENT_IDENTIFIER]
        agent = members["." + dom0_layout.AGENT]
        assert agent.mode & 0o111
        agent_source = Path(__file__).parents[2] / "dom0" / "firstboot" / "agent.py"
        assert tar.extractfile(agent).read() == agent_source.read_bytes()
        interfaces = tar.extractfile(members["." + dom0_layout.NETWORK_INTERFACES]).read().decode()
        assert "source /etc/network/interfaces.d/*" in interfaces
        assert tar.extractfile(members["." + dom0_layout.RELEASE_FILE]).read() == b"demo\n"
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_cli_demo_list_verify_remove(tmp_path: Path, cli: CliRunner) -> None:
    releases = tmp_path / "releases"
    result = _images(cli, "demo", "--out", str(releases / "demo"), "--cache", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    assert "placeholders: hypervisor," in result.output

    listed = _images(cli, "list", "--releases", str(releases))
    assert listed.exit_code == 0
    assert "demo [demo]" in listed.output

    assert _images(cli, "verify", "--releases", str(releases)).exit_code == 0

    removed = _images(cli, "remove", "demo", "--releases", str(releases))
    assert removed.exit_code == 0
    assert not (releases / "demo").exists()
    assert "no releases" in _images(cli, "list", "--releases", str(releases)).output


def test_verify_catches_a_single_flipped_byte(tmp_path: Path, cli: CliRunner) -> None:
    releases = tmp_path / "releases"
    manifest = build_demo_release(releases / "demo", BuildCache(tmp_path / "cache"))
    rootfs = releases / "demo" / manifest.artefact(ArtefactKind.DOM0_ROOTFS).path
    data = bytearray(rootfs.read_bytes())
    data[len(data) // 2] ^= 0x01
    rootfs.write_bytes(bytes(data))

    result = _images(cli, "verify", "demo", "--releases", str(releases))
    assert result.exit_code != 0
    assert "demo: CORRUPT" in result.output
    assert f"demo/{rootfs.name}: sha256" in result.output


def test_remove_of_an_unknown_release_is_one_clear_error(tmp_path: Path, cli: CliRunner) -> None:
    result = _images(cli, "remove", "nope", "--releases", str(tmp_path))
    assert result.exit_code == 1
    assert "Error: no release 'nope'" in result.output
    assert "Traceback" not in result.output


def _fake_xen(path: Path) -> Path:
    """A gzip file with a multiboot2 header at an aligned offset, like xen.gz."""
    image = bytes(64) + struct.pack("<IIII", 0xE85250D6, 0, 16, (-(0xE85250D6 + 16)) & 0xFFFFFFFF)
    path.write_bytes(gzip.compress(image + bytes(1000)))
    return path


def test_import_hypervisor_from_file_into_an_existing_release(
    tmp_path: Path, cli: CliRunner
) -> None:
    out = tmp_path / "releases" / "mine"
    build_demo_release(out, BuildCache(tmp_path / "cache"))
    xen = _fake_xen(tmp_path / "my-xen.gz")
    result = _images(cli, "hypervisor", "--out", str(out), "--from", str(xen), "--version", "4.19")
    assert result.exit_code == 0, result.output
    manifest = release.load(out)
    art = manifest.artefact(ArtefactKind.HYPERVISOR)
    assert art.version == "4.19"
    assert (out / art.path).read_bytes() == xen.read_bytes()
    assert manifest.has(ArtefactKind.DOM0_ROOTFS)
    assert "imported from" in manifest.notes["hypervisor"]
    assert release.verify(out) == []


def test_import_refuses_a_file_that_is_not_xen(tmp_path: Path, cli: CliRunner) -> None:
    not_gzip = tmp_path / "kernel"
    not_gzip.write_bytes(b"MZ not a xen")
    plain_gzip = tmp_path / "notes.gz"
    plain_gzip.write_bytes(gzip.compress(b"hello" * 1000))
    out = tmp_path / "out"
    result = _images(cli, "hypervisor", "--out", str(out), "--from", str(not_gzip))
    assert result.exit_code == 1
    assert "not a gzip-compressed Xen image" in result.output
    result = _images(cli, "hypervisor", "--out", str(out), "--from", str(plain_gzip))
    assert result.exit_code == 1
    assert "no multiboot2 header" in result.output
    assert not (out / "manifest.json").exists()
