"""Checking a release manifest's detached OpenPGP signature with ``gpgv``.

``gpgv`` is how apt checks Debian's archive: one small program, in every Debian system and in
the installer image, that checks a signature against the keys of one keyring file and nothing
else (no trust database, no key server, no agent, no state). Only the keyring decides who may
sign, so whoever provides the keyring decides which releases a host accepts.

A keyring is what ``gpg --export`` writes, binary or ``--armor``ed; gpgv reads only the binary
form, so armour is taken off here. The signature is checked over the exact bytes the caller is
about to parse, never over a second download of them.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import runner
from common.errors import CommandError, ReportedError

_ARMOR_BEGIN = "-----BEGIN PGP "
_ARMOR_END = "-----END PGP "
# gpgv's status words that mean "do not trust this", whatever its exit code says.
_REFUSING = {
    "BADSIG": "the signature does not match the manifest: it was changed after signing",
    "EXPKEYSIG": "the signing key has expired",
    "REVKEYSIG": "the signing key has been revoked",
    "EXPSIG": "the signature has expired",
    "NO_PUBKEY": "it was made by a key that is not in the site keyring",
    "NODATA": "the signature file holds no OpenPGP signature",
}


class SignatureError(ReportedError):
    """A release signature that is missing, malformed or not made by a key of the keyring."""

    exit_code = 2

    def __init__(self, origin: str, reason: str) -> None:
        self.origin = origin
        self.reason = reason
        super().__init__(f"the signature of {origin} is not valid: {reason}")


class KeyringError(ReportedError):
    """The site keyring cannot be read or holds no key."""

    exit_code = 2

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"release keyring {path}: {reason}")


@dataclass(frozen=True)
class Signed:
    """A good signature: who made it (the primary key's fingerprint) and with which subkey."""

    fingerprint: str
    signing_key: str


def keyring_bytes(path: Path) -> bytes:
    """The keyring as gpgv reads it (binary OpenPGP packets), armour removed if any."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyringError(path, exc.strerror or str(exc)) from exc
    if not data.strip():
        raise KeyringError(path, "the file is empty; export the site key with `gpg --export`")
    if not data.lstrip().startswith(_ARMOR_BEGIN.encode()):
        return data
    try:
        return dearmor(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyringError(path, f"not a valid armoured key block ({exc})") from exc


def dearmor(text: str) -> bytes:
    """The packets of every ``-----BEGIN PGP ...`` block of ``text``, in order."""
    out = bytearray()
    lines = iter(text.splitlines())
    for line in lines:
        if not line.startswith(_ARMOR_BEGIN):
            continue
        for header in lines:  # armour headers ("Comment: ...") end at the first empty line
            if not header.strip():
                break
        body = []
        for data in lines:
            if data.startswith(("=", _ARMOR_END)):  # the CRC line, or the end without one
                break
            body.append(data.strip())
        try:
            out += base64.b64decode("".join(body), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in the key block: {exc}") from exc
    if not out:
        raise ValueError("no key block found")
    return bytes(out)


def verify(data: bytes, signature: bytes, keyring: Path, origin: str) -> Signed:
    """Check ``signature`` over ``data`` against ``keyring``; ``origin`` names them in errors."""
    keys = keyring_bytes(keyring)
    with tempfile.TemporaryDirectory(prefix="xcp-gpgv-") as tmp:
        home = Path(tmp)
        home.chmod(0o700)
        (home / "keyring.gpg").write_bytes(keys)
        (home / "manifest.sig").write_bytes(signature)
        try:
            result = runner.run(
                ["gpgv", "--homedir", home, "--status-fd", "1",
                 "--keyring", home / "keyring.gpg", home / "manifest.sig", "-"],
                input=data, check=False, timeout=60,
                env={"LC_ALL": "C"},
            )  # fmt: skip
        except CommandError as exc:  # gpgv missing or hung
            raise SignatureError(origin, f"cannot run gpgv ({exc}); install Debian's gpgv") from exc
    status = _status(result.stdout)
    for word, reason in _REFUSING.items():
        if word in status:
            raise SignatureError(origin, reason)
    valid = status.get("VALIDSIG")
    if result.returncode != 0 or "GOODSIG" not in status or not valid:
        detail = result.stderr.strip().splitlines()
        raise SignatureError(origin, detail[-1] if detail else f"gpgv exit {result.returncode}")
    # VALIDSIG <signing key fpr> <date> <timestamp> <expiry> <version> <reserved> <pk algo>
    #          <hash algo> <class> <primary key fpr>
    return Signed(fingerprint=valid[-1], signing_key=valid[0])


def _status(stdout: str) -> dict[str, list[str]]:
    """gpgv's ``[GNUPG:] WORD args...`` lines as WORD -> args (the last one of each word)."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith("[GNUPG:] "):
            word, *args = line.removeprefix("[GNUPG:] ").split()
            found[word] = args
    return found
