"""Real OpenPGP keys made by gpg for a test, in a private GnuPG home that is removed after.

gpg starts an agent for the home it is given and talks to it over a socket inside the home, so
the home is made under /tmp with a short name (socket paths are limited to about 100 bytes;
pytest's tmp_path can be longer), and that home's agent is stopped by name on the way out.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.runner import run


@dataclass(frozen=True)
class SiteKey:
    home: Path  # a GnuPG home holding the secret key
    fingerprint: str
    keyring: Path  # the public key, binary, as `gpg --export` writes it
    armored: Path  # the same, armoured


def _fingerprint(home: Path, uid: str) -> str:
    out = run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys", uid])
    return next(line.split(":")[9] for line in out.stdout.splitlines() if line.startswith("fpr:"))


@contextlib.contextmanager
def site_keys(*names: str) -> Iterator[dict[str, SiteKey]]:
    """One signing key per name, each in its own home (ed25519, no passphrase, no expiry)."""
    homes: list[Path] = []
    try:
        keys = {}
        for name in names:
            home = Path(tempfile.mkdtemp(prefix="gk-", dir="/tmp"))
            homes.append(home)
            uid = f"{name} release key <release@{name}.example>"
            run(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-generate-key",
                 uid, "ed25519", "sign", "never"], timeout=120)  # fmt: skip
            fpr = _fingerprint(home, uid)
            keyring = home / "public.gpg"
            armored = home / "public.asc"
            run(["gpg", "--homedir", home, "--batch", "--yes", "--output", keyring,
                 "--export", fpr])  # fmt: skip
            run(["gpg", "--homedir", home, "--batch", "--yes", "--armor", "--output", armored,
                 "--export", fpr])  # fmt: skip
            keys[name] = SiteKey(home, fpr, keyring, armored)
        yield keys
    finally:
        for home in homes:
            run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
            shutil.rmtree(home, ignore_errors=True)
