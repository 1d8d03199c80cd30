"""Root passwords as crypt(3) hashes, the form /etc/shadow takes and templates carry.

A plaintext password must never be stored or logged, so everything that receives one hashes it
at once (SHA-512 crypt) and keeps only the hash. Hashes written by others are taken in any
scheme dom0's libxcrypt accepts, so XCP-ng answer files with SHA-256, yescrypt, bcrypt or even
MD5 hashes work unchanged (MD5 with a warning).
"""

from __future__ import annotations

import re

from passlib.hash import sha512_crypt

_ALPHABET = "[./0-9A-Za-z]"
_SCHEMES = {
    "SHA-512": re.compile(rf"\$6\$(rounds=[0-9]+\$)?{_ALPHABET}{{1,16}}\${_ALPHABET}{{86}}"),
    "SHA-256": re.compile(rf"\$5\$(rounds=[0-9]+\$)?{_ALPHABET}{{1,16}}\${_ALPHABET}{{43}}"),
    "yescrypt": re.compile(rf"\$(y|gy)\${_ALPHABET}+\${_ALPHABET}+\${_ALPHABET}{{43}}"),
    "bcrypt": re.compile(rf"\$2[aby]\$[0-9]{{2}}\${_ALPHABET}{{53}}"),
    "MD5": re.compile(rf"\$1\${_ALPHABET}{{1,8}}\${_ALPHABET}{{22}}"),
}
WEAK_SCHEMES = frozenset({"MD5"})


def hash_password(plain: str) -> str:
    """A fresh salted SHA-512 crypt hash of ``plain``."""
    if not plain:
        raise ValueError("an empty password cannot be hashed: choose a password")
    return sha512_crypt.hash(plain)


def crypt_scheme(text: str) -> str | None:
    """The crypt(3) scheme ``text`` is a hash of (``"SHA-512"``, ``"MD5"``...), or None."""
    return next((name for name, shape in _SCHEMES.items() if shape.fullmatch(text)), None)
