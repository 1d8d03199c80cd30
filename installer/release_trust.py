"""Whether a release's signature must be checked, and the keys it is checked against.

XCP-ng checks its repositories' OpenPGP signatures unless ``gpgcheck`` / ``repo-gpgcheck`` say
false. A release here carries one signature, over ``manifest.json``, which lists every
artefact's sha256: ``repo-gpgcheck`` asks for that signature (the repository's metadata), and
``gpgcheck`` asks that every artefact be authenticated, which only a checked manifest does, so
either one asks for the same check. A ``<source>``'s own attribute wins over the root's.

When neither is written the installer decides: the answer is yes when it carries a site keyring
(it was built for a site that signs its releases, and then an unsigned release is refused even
from an answer file that never heard of signatures) and no when it carries none, so the unsigned
releases of today keep installing. An explicit ``true`` without a keyring is refused: a promise
to check that cannot be kept. Both explicitly ``false`` skip the check, said in the log.

The keyring travels with the installer image (``xcp-provision images installer
--release-keyring``), never with the release it judges: a release from an FTP mirror, a USB
stick or another server must be signed by the key the site baked into its installer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from answerfiles.model import AnswerFile, Source
from common.release import SIGNATURE, Manifest
from common.release_signature import KeyringError, SignatureError, Signed, verify
from installer import fetch
from installer.errors import RefusedError

log = logging.getLogger(__name__)

SITE_KEYRING = Path("/etc/xcp-provision/release-keys.gpg")
KEYRING_ENV = "XCP_PROVISION_RELEASE_KEYRING"


class TrustRefusedError(RefusedError):
    """The release's signature is missing or bad, or cannot be checked as the answer file asks."""


@dataclass(frozen=True)
class Decision:
    """Whether to check, against which keyring, and the words that decided it (for messages)."""

    required: bool
    keyring: Path | None
    because: str


def site_keyring() -> Path | None:
    """The installer's keyring: ``$XCP_PROVISION_RELEASE_KEYRING`` or the image's file.

    None when the image carries none; a variable naming a missing file is a refusal, not a quiet
    fall back to "no keyring", which would also mean "no check".
    """
    named = os.environ.get(KEYRING_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise TrustRefusedError(
                f"{KEYRING_ENV}={named} names no file; point it at the site's release keyring "
                "or unset it"
            )
        return path
    return SITE_KEYRING if SITE_KEYRING.is_file() else None


def decide(answers: AnswerFile, source: Source, keyring: Path | None) -> Decision:
    """The check the answer file asks of ``source``, given the installer's ``keyring``."""
    written = []
    for attr, name in (("gpgcheck", "gpgcheck"), ("repo_gpgcheck", "repo-gpgcheck")):
        own, root = getattr(source, attr), getattr(answers, attr)
        if own is not None:
            written.append((own, f'{name}="{str(own).lower()}" on <source>'))
        elif root is not None:
            written.append((root, f'{name}="{str(root).lower()}" on the root element'))
        else:
            written.append((None, name))
    asking = [words for value, words in written if value is True]
    if asking:
        if keyring is None:
            raise TrustRefusedError(
                f"{asking[0]} asks for a signed release, but this installer carries no site "
                "keyring to check it with; build the installer image with `xcp-provision images "
                "installer --release-keyring FILE`, or drop the attribute"
            )
        return Decision(True, keyring, asking[0])
    if any(value is None for value, _ in written):
        if keyring is not None:
            return Decision(True, keyring, f"the installer's site keyring {keyring}")
        return Decision(False, None, "this installer carries no site keyring")
    return Decision(False, keyring, 'gpgcheck="false" and repo-gpgcheck="false"')


def check(location: str, data: bytes, manifest: Manifest, decision: Decision) -> Signed | None:
    """Check the signature of ``data`` (the manifest's bytes, as fetched from under
    ``location``) when ``decision`` asks.

    Raises ``TrustRefusedError`` for a missing or bad signature; returns who signed, or None when
    no check was asked for.
    """
    base = fetch.shown(location)  # an FTP password stays out of messages and logs
    if not decision.required:
        log.warning(
            "release %r at %s is installed without a signature check (%s)",
            manifest.name,
            base,
            decision.because,
        )
        return None
    assert decision.keyring is not None
    try:
        signature = fetch.read_release_file(location, SIGNATURE)
    except fetch.ReleaseFileMissingError as exc:
        raise TrustRefusedError(
            f"release {manifest.name!r} at {base} is not signed (no {SIGNATURE}), and "
            f"{decision.because} asks for a signature; sign it with `xcp-provision images sign "
            f"{manifest.name} --key FINGERPRINT`"
        ) from exc
    try:
        signed = verify(data, signature, decision.keyring, f"release {manifest.name!r} at {base}")
    except (SignatureError, KeyringError) as exc:
        raise TrustRefusedError(f"{exc}; refusing it, as {decision.because} asks") from exc
    log.info("release %r at %s is signed by %s", manifest.name, base, signed.fingerprint)
    return signed
