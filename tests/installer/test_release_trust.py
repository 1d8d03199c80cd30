"""Signed releases: signed with a real key made here, checked by the installer with gpgv.

A good signature is accepted; a changed manifest, another key, a missing or garbled signature
are refused before anything is written. When the answer file says nothing, the installer's site
keyring decides; an explicit ``true`` without a keyring is refused; both ``false`` skip the check.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from support import small_release
from support.ftp_server import PASSWORD, USER, FtpServer
from support.gpg_keys import SiteKey, site_keys
from support.release_server import ReleaseServer

from answerfiles.parse import parse_answerfile
from common import release, runner
from common.release import SIGNATURE
from images.signing import sign_release
from installer import install, release_trust
from installer.plan import BootMode
from installer.release import load_release, open_source
from installer.release_trust import TrustRefusedError

GIB = 1 << 30
ANSWERS = """<?xml version="1.0"?>
<installation{root}>
    <primary-disk>sda</primary-disk>
    <source type="url"{attrs}>{url}</source>
    <admin-interface name="eth0" proto="dhcp"/>
</installation>
"""


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, SiteKey]]:
    with site_keys("site", "other") as made:
        yield made


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SiteKey]) -> Path:
    """``signed/`` (by the site key), ``unsigned/``, ``other/`` (signed by another key)."""
    top = tmp_path_factory.mktemp("releases")
    for name in ("signed", "unsigned", "other"):
        small_release.build(top / name)
    sign_release(top / "signed", keys["site"].fingerprint, keys["site"].home)
    sign_release(top / "other", keys["other"].fingerprint, keys["other"].home)
    return top


def _answers(url: str, root: str = "", attrs: str = ""):
    xml = ANSWERS.format(
        url=url, root=f" {root}" if root else "", attrs=f" {attrs}" if attrs else ""
    )
    return parse_answerfile(xml, "trust.xml").answers


def _load(url: str, keyring: Path | None, root: str = "", attrs: str = ""):
    answers = _answers(url, root, attrs)
    with ExitStack() as media:
        return load_release(answers, open_source(answers, media), keyring=keyring)


def _copy(releases: Path, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(releases / name, tmp_path / name))


def test_a_signed_release_is_checked_and_accepted(releases: Path, keys) -> None:
    with ReleaseServer(releases) as srv:
        base, manifest = _load(f"{srv.url}/signed", keys["site"].keyring, 'gpgcheck="true"')
        fetched = [g.path for g in srv.gets]
    assert base == f"{srv.url}/signed" and manifest.name == "test"
    assert fetched == ["/signed/manifest.json", f"/signed/{SIGNATURE}"]


def test_an_armoured_keyring_works_as_well(releases: Path, keys) -> None:
    _, manifest = _load((releases / "signed").as_uri(), keys["site"].armored, 'repo-gpgcheck="yes"')
    assert manifest.name == "test"


def test_a_changed_manifest_is_refused(releases: Path, keys, tmp_path: Path) -> None:
    changed = _copy(releases, "signed", tmp_path)
    signature = (changed / SIGNATURE).read_bytes()
    text = (changed / "manifest.json").read_text()
    (changed / "manifest.json").write_text(text.replace('"version": "0.1"', '"version": "0.2"'))
    (changed / SIGNATURE).write_bytes(signature)
    with pytest.raises(TrustRefusedError) as refused:
        _load(changed.as_uri(), keys["site"].keyring, 'gpgcheck="true"')
    assert "does not match the manifest" in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_release_signed_by_another_key_is_refused(releases: Path, keys) -> None:
    with ReleaseServer(releases) as srv, pytest.raises(TrustRefusedError) as refused:
        _load(f"{srv.url}/other", keys["site"].keyring, 'gpgcheck="true"')
    assert "not in the site keyring" in str(refused.value)
    assert f"{srv.url}/other" in str(refused.value)


def test_an_unsigned_release_is_refused_when_a_check_is_asked_for(releases: Path, keys) -> None:
    with ReleaseServer(releases) as srv, pytest.raises(TrustRefusedError) as refused:
        _load(f"{srv.url}/unsigned", keys["site"].keyring, 'gpgcheck="true"')
    message = str(refused.value)
    assert f"release 'test' at {srv.url}/unsigned is not signed (no {SIGNATURE})" in message
    assert 'gpgcheck="true" on the root element asks for a signature' in message
    assert "xcp-provision images sign test" in message


def test_a_garbled_signature_is_refused(releases: Path, keys, tmp_path: Path) -> None:
    garbled = _copy(releases, "signed", tmp_path)
    (garbled / SIGNATURE).write_text(
        "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
    )
    with pytest.raises(TrustRefusedError, match="is not valid"):
        _load(garbled.as_uri(), keys["site"].keyring, 'gpgcheck="true"')


def test_over_ftp_too_and_the_password_stays_out_of_messages(releases: Path, keys) -> None:
    with FtpServer(releases) as srv:
        _, manifest = _load(f"{srv.url}/signed", keys["site"].keyring, 'gpgcheck="true"')
        with pytest.raises(TrustRefusedError) as refused:
            _load(f"{srv.url_as(USER, PASSWORD)}/other", keys["site"].keyring, 'gpgcheck="true"')
    assert manifest.name == "test"
    assert "not in the site keyring" in str(refused.value)
    assert "ftp://site:***@" in str(refused.value) and PASSWORD not in str(refused.value)


def test_no_attribute_and_no_keyring_install_unsigned_as_before(
    releases: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ReleaseServer(releases) as srv, caplog.at_level(logging.WARNING):
        _, manifest = _load(f"{srv.url}/unsigned", None)
        fetched = [g.path for g in srv.gets]
    assert manifest.name == "test" and fetched == ["/unsigned/manifest.json"]
    assert "without a signature check (this installer carries no site keyring)" in caplog.text


def test_no_attribute_and_a_keyring_require_a_signature(releases: Path, keys) -> None:
    assert _load((releases / "signed").as_uri(), keys["site"].keyring)[1].name == "test"
    with pytest.raises(TrustRefusedError) as refused:
        _load((releases / "unsigned").as_uri(), keys["site"].keyring)
    assert f"the installer's site keyring {keys['site'].keyring} asks" in str(refused.value)


def test_an_explicit_true_without_a_keyring_is_refused_before_any_fetch(releases: Path) -> None:
    with ReleaseServer(releases) as srv:
        with pytest.raises(TrustRefusedError) as refused:
            _load(f"{srv.url}/signed", None, attrs='repo-gpgcheck="true"')
        fetched = srv.gets
    assert fetched == []
    assert str(refused.value).startswith(
        'repo-gpgcheck="true" on <source> asks for a signed release, but this installer carries '
        "no site keyring"
    )


def test_both_false_skip_the_check_even_with_a_keyring(
    releases: Path, keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _, manifest = _load(
            (releases / "other").as_uri(),
            keys["site"].keyring,
            'gpgcheck="false" repo-gpgcheck="false"',
        )
    assert manifest.name == "test"
    assert 'without a signature check (gpgcheck="false" and repo-gpgcheck="false")' in caplog.text
    # One false alone leaves the other at the keyring's default: still checked.
    with pytest.raises(TrustRefusedError, match="not in the site keyring"):
        _load((releases / "other").as_uri(), keys["site"].keyring, 'gpgcheck="false"')


def test_the_source_attribute_wins_over_the_root(releases: Path, keys) -> None:
    root, off = 'gpgcheck="true" repo-gpgcheck="true"', 'gpgcheck="no" repo-gpgcheck="no"'
    assert _load((releases / "unsigned").as_uri(), None, root, off)[1].name == "test"
    with pytest.raises(TrustRefusedError, match='gpgcheck="true" on <source>'):
        _load(
            (releases / "unsigned").as_uri(),
            keys["site"].keyring,
            'gpgcheck="false" repo-gpgcheck="false"',
            'gpgcheck="true"',
        )


def test_the_site_keyring_comes_from_the_image_or_the_variable(
    releases: Path, keys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(release_trust.KEYRING_ENV, str(keys["site"].keyring))
    answers = _answers((releases / "unsigned").as_uri())
    with ExitStack() as media, pytest.raises(TrustRefusedError, match="is not signed"):
        load_release(answers, open_source(answers, media))
    monkeypatch.setenv(release_trust.KEYRING_ENV, str(tmp_path / "absent.gpg"))
    with pytest.raises(TrustRefusedError, match="names no file"):
        release_trust.site_keyring()


def test_rebuilding_a_release_drops_its_signature(releases: Path, keys, tmp_path: Path) -> None:
    rebuilt = _copy(releases, "signed", tmp_path)
    release.add_artefacts(rebuilt, [], version="0.1", notes={"rebuilt": "yes"})
    assert not (rebuilt / SIGNATURE).exists()
    with pytest.raises(TrustRefusedError, match="is not signed"):
        _load(rebuilt.as_uri(), keys["site"].keyring)


@pytest.mark.root
def test_a_badly_signed_release_stops_the_install_before_any_write(
    releases: Path, keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(release_trust.KEYRING_ENV, str(keys["site"].keyring))
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(60 * GIB)
    seen: list[list[str]] = []
    with (
        ReleaseServer(releases) as srv,
        runner.guarded(seen.append),
        pytest.raises(install.RefusedError, match="not in the site keyring"),
    ):
        install.install(_answers(f"{srv.url}/other"), target=str(image), boot_mode=BootMode.BIOS)
    writers = {
        "mkfs.ext3",
        "mkfs.vfat",
        "mkswap",
        "sgdisk",
        "dd",
        "mount",
        "tar",
        "grub-mkimage",
        "mcopy",
    }
    assert not writers & {argv[0] for argv in seen}
    assert not any(argv[:2] == ["partx", "--add"] for argv in seen)
    with open(image, "rb") as fh:
        assert fh.read(1 << 20) == bytes(1 << 20)
