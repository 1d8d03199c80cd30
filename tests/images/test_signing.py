"""Signing a release (``images sign``), checking it (``images verify --keyring``), and the site
keyring an installer image carries, with real keys made here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import small_release
from support.gpg_keys import SiteKey, site_keys

from common import release_signature
from common.release import SIGNATURE, ReleaseError
from images.bootimage import build
from images.signing import SigningError, keyring_fingerprints, sign_release
from installer import release_trust
from xcp_provision.main import main


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, SiteKey]]:
    with site_keys("site", "other") as made:
        yield made


def _images(cli: CliRunner, *args: str):
    return cli.invoke(main, ["images", *args], catch_exceptions=False)


def test_sign_then_verify_with_the_site_keyring(tmp_path: Path, cli: CliRunner, keys) -> None:
    small_release.build(tmp_path / "r1")
    site = keys["site"]
    signed = _images(cli, "sign", "r1", "--key", site.fingerprint, "--gnupg-home", str(site.home),
                     "--releases", str(tmp_path))  # fmt: skip
    assert signed.exit_code == 0, signed.output
    assert f"signed r1: {tmp_path / 'r1' / SIGNATURE} by {site.fingerprint}" in signed.output
    assert (tmp_path / "r1" / SIGNATURE).read_text().startswith("-----BEGIN PGP SIGNATURE-----")

    good = _images(cli, "verify", "r1", "--releases", str(tmp_path), "--keyring", str(site.armored))
    assert good.exit_code == 0, good.output
    assert f"r1: signed by {site.fingerprint}" in good.output and "r1: ok" in good.output

    other = _images(cli, "verify", "r1", "--releases", str(tmp_path), "--keyring",
                    str(keys["other"].keyring))  # fmt: skip
    assert other.exit_code == 1
    assert "r1/manifest.json.asc: it was made by a key that is not in the site keyring" in (
        other.output
    )


def test_verify_with_a_keyring_reports_an_unsigned_release(tmp_path: Path, cli: CliRunner, keys):
    small_release.build(tmp_path / "plain")
    result = _images(cli, "verify", "plain", "--releases", str(tmp_path), "--keyring",
                     str(keys["site"].keyring))  # fmt: skip
    assert result.exit_code == 1
    assert "the release is unsigned; sign it with `xcp-provision images sign`" in result.output
    assert "plain: CORRUPT" in result.output


def test_signing_with_an_unknown_key_is_one_sentence_and_writes_nothing(
    tmp_path: Path, cli: CliRunner, keys
) -> None:
    small_release.build(tmp_path / "r1")
    result = _images(cli, "sign", "r1", "--key", "0" * 40, "--gnupg-home",
                     str(keys["site"].home), "--releases", str(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    assert "Error: gpg knows no key '0000" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r1" / SIGNATURE).exists()


def test_a_signature_made_with_one_key_is_checked_by_fingerprint(tmp_path: Path, keys) -> None:
    small_release.build(tmp_path / "r1")
    signed = sign_release(tmp_path / "r1", keys["other"].fingerprint, keys["other"].home)
    assert signed.fingerprint == keys["other"].fingerprint
    with pytest.raises(ReleaseError, match="no manifest"):
        sign_release(tmp_path, keys["site"].fingerprint, keys["site"].home)


def test_the_image_keyring_lands_where_the_installer_reads_it(tmp_path: Path, keys) -> None:
    site = keys["site"]
    assert keyring_fingerprints(site.armored) == (site.fingerprint,)
    data = release_signature.keyring_bytes(site.armored)
    assert data == site.keyring.read_bytes()  # armour off: what gpgv reads
    placed = build.install_release_keyring(tmp_path / "root", data)
    assert placed == tmp_path / "root" / str(release_trust.SITE_KEYRING).lstrip("/")
    assert placed.read_bytes() == site.keyring.read_bytes()


def test_a_keyring_that_is_not_one_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    with pytest.raises(release_signature.KeyringError, match="the file is empty"):
        release_signature.keyring_bytes(empty)
    junk = tmp_path / "junk.asc"
    junk.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK")
    with pytest.raises(release_signature.KeyringError, match="not a valid armoured key block"):
        release_signature.keyring_bytes(junk)
    text = tmp_path / "text.gpg"
    text.write_text("hello\n")
    with pytest.raises(SigningError, match=r"holds no public key|not an OpenPGP keyring"):
        keyring_fingerprints(text)
