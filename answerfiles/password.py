"""Root passwords as SHA-512 crypt hashes, the form /etc/shadow takes and templates carry.

A plaintext password must never be stored or logged, so everything that receives one hashes it
at once and keeps only the hash.
"""

from __future__ import annotations

import re

from passlib.hash import sha512_crypt

# $6$[rounds=N$]salt$hash: salt up to 16 characters, hash exactly 86, both in crypt's alphabet.
_SHA512_CRYPT = re.compile(
    r"\$6\$(rounds=[1-9][0-9]{3,8}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}"
)


def hash_password(plain: str) -> str:
    """A fresh salted SHA-512 crypt hash of ``plain``."""
    if not plain:
        raise ValueError("an empty password cannot be hashed: choose a password")
    return sha512_crypt.hash(plain)


def is_sha512_crypt(text: str) -> bool:
    """Whether ``text`` is shaped like a SHA-512 crypt hash (``$6$...``)."""
    return _SHA512_CRYPT.fullmatch(text) is not None
