"""The registration key: a secret the installer leaves on the installed host's disk, so that its
first boot proves it is the machine that installed, from whatever address dom0 comes up on.

The installer writes the key into the first-boot agent's config (mode 0600) and sends only its
sha256 with build-done, with the install token and from the address that token is bound to; the
agent sends the key itself with its registration. An address known in advance is then no longer
the only proof: a host on DHCPv6, or one whose address changed since its install, registers too.

Standard library only: the installer and the server import it; the first-boot agent runs alone
in dom0 and repeats :data:`FIELD`, which a test holds equal.
"""

from __future__ import annotations

import hashlib
import re
import secrets

FIELD = "registration_key"  # in the agent's config and in the registration body
DIGEST_FIELD = "registration_key_sha256"  # in the build-done body
DIGEST_PATTERN = r"^[0-9a-f]{64}$"
# The longest key a registration may send; the installer's are 43 characters.
MAX_KEY_CHARS = 256

_DIGEST = re.compile(DIGEST_PATTERN)


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> str:
    """What the server keeps of a key: its sha256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_digest(text: object) -> bool:
    """Whether ``text`` is a digest as :func:`digest` writes it."""
    # fullmatch: match's $ allows a final newline.
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None
