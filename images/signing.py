"""Signing a release with the site's OpenPGP key: ``manifest.json.asc`` beside ``manifest.json``.

The manifest lists every artefact's size and sha256, so one detached signature over its bytes
vouches for the whole release. The secret key stays wherever the operator keeps it (their
``~/.gnupg``, a smartcard, an offline machine's home copied for the occasion): this module only
asks ``gpg`` to sign, then checks the new signature with the key's public half through the same
``gpgv`` check the installer makes, so a release is never left with a signature no installer
would accept. Rebuilding any artefact rewrites the manifest and drops the signature
(``common.release.save``): sign again after every build.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from common import release, runner
from common.errors import CommandError
from common.release_signature import SignatureError, Signed, keyring_bytes, verify
from images.errors import ImageError


class SigningError(ImageError):
    """The release could not be signed with the key asked for; nothing was changed."""


def _gpg(gnupg_home: Path | None, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    home: list[str | os.PathLike[str]] = ["--homedir", gnupg_home] if gnupg_home else []
    return ["gpg", *home, "--yes", "--quiet", *args]


def export_public_key(key: str, gnupg_home: Path | None = None) -> bytes:
    """The public half of ``key``, armoured (what ``--release-keyring`` and gpgv checks take)."""
    try:
        result = runner.run(_gpg(gnupg_home, "--armor", "--export", key), timeout=60)
    except CommandError as exc:
        raise SigningError(f"cannot export key {key!r} with gpg: {exc}") from exc
    if "BEGIN PGP PUBLIC KEY BLOCK" not in result.stdout:
        where = gnupg_home or os.environ.get("GNUPGHOME") or "~/.gnupg"
        raise SigningError(
            f"gpg knows no key {key!r} in {where}: give its fingerprint as "
            "`gpg --list-secret-keys` shows it, or --gnupg-home where the site key lives"
        )
    return result.stdout.encode()


def sign_release(release_dir: Path, key: str, gnupg_home: Path | None = None) -> Signed:
    """Sign ``release_dir``'s manifest with ``key``; returns who signed, as installers see it."""
    release_dir = Path(release_dir)
    release.load(release_dir)  # a release directory with a manifest that parses, or refuse
    manifest = release_dir / release.MANIFEST
    data = manifest.read_bytes()
    public = export_public_key(key, gnupg_home)
    with tempfile.TemporaryDirectory(prefix="xcp-sign-") as tmp:
        signature = Path(tmp) / release.SIGNATURE
        keyring = Path(tmp) / "public.gpg"
        keyring.write_bytes(public)
        try:
            runner.run(
                _gpg(gnupg_home, "--local-user", key, "--armor", "--detach-sign",
                     "--output", signature, "-"),
                input=data, timeout=300,
            )  # fmt: skip
        except CommandError as exc:
            raise SigningError(f"gpg could not sign {manifest} with {key!r}: {exc}") from exc
        signed = verify(data, signature.read_bytes(), keyring, str(manifest))
        if manifest.read_bytes() != data:
            raise SigningError(f"{manifest} changed while it was being signed; sign again")
        target = release_dir / release.SIGNATURE
        staged = target.with_name(f".{target.name}.tmp")
        staged.write_bytes(signature.read_bytes())
        os.replace(staged, target)
    return signed


def check_release(release_dir: Path, keyring: Path) -> Signed:
    """The release's signature checked as an installer holding ``keyring`` would check it."""
    release_dir = Path(release_dir)
    signature = release_dir / release.SIGNATURE
    if not signature.is_file():
        raise SignatureError(
            str(release_dir),
            f"it has no {release.SIGNATURE}: the release is "
            "unsigned; sign it with `xcp-provision images sign`",
        )
    data = (release_dir / release.MANIFEST).read_bytes()
    return verify(data, signature.read_bytes(), keyring, str(release_dir / release.MANIFEST))


def keyring_fingerprints(keyring: Path) -> tuple[str, ...]:
    """The primary keys of ``keyring`` (armoured or not), read without touching any GnuPG home."""
    data = keyring_bytes(keyring)
    with tempfile.TemporaryDirectory(prefix="xcp-keys-") as tmp:
        Path(tmp).chmod(0o700)
        (Path(tmp) / "keys.gpg").write_bytes(data)
        try:
            listed = runner.run(
                [
                    "gpg",
                    "--homedir",
                    tmp,
                    "--batch",
                    "--with-colons",
                    "--show-keys",
                    Path(tmp) / "keys.gpg",
                ],
                timeout=60,
            )
        except CommandError as exc:
            raise SigningError(f"{keyring} is not an OpenPGP keyring gpg can read: {exc}") from exc
    lines = listed.stdout.splitlines()
    found = tuple(
        lines[i + 1].split(":")[9]
        for i, line in enumerate(lines[:-1])
        if line.startswith("pub:") and lines[i + 1].startswith("fpr:")
    )
    if not found:
        raise SigningError(
            f"{keyring} holds no public key; export the site key with "
            "`gpg --export FINGERPRINT > FILE`"
        )
    return found
