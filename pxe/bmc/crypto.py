"""BMC passwords at rest: encrypted with a key made once in the data directory.

The key is ``<data_dir>/bmc-secret-key`` (0600), a Fernet key (AES-128-CBC with an
HMAC-SHA256, from the cryptography library), made on first use the way the dashboard's
session key is: written whole under a temporary name, then linked into place, so that worker
processes starting together agree on one key. The database holds only the encrypted token;
a copy of the database without the key file reveals no password. Servers sharing one
PostgreSQL database must share this file too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from pxe.store.errors import StoreError

KEY_FILE = "bmc-secret-key"


class SecretKeyError(StoreError):
    """The key file exists but cannot be used, or no longer matches the stored passwords."""


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def _make_key(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        tmp.unlink()


def cipher(data_dir: Path) -> Fernet:
    """The data directory's cipher, its key made (0600) if absent."""
    path = key_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _make_key(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise SecretKeyError(
            f"{path} can be read by other users; make it private (chmod 600 {path})"
        )
    try:
        return Fernet(path.read_bytes().strip())
    except ValueError as exc:
        raise SecretKeyError(
            f"{path} is not a Fernet key ({exc}); restore it from a backup, or delete it and "
            "set every BMC password again"
        ) from exc


def encrypt(data_dir: Path, password: str) -> str:
    return cipher(data_dir).encrypt(password.encode()).decode("ascii")


def decrypt(data_dir: Path, token: str) -> str:
    try:
        return cipher(data_dir).decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise SecretKeyError(
            f"the stored BMC password cannot be decrypted with {key_path(data_dir)} (the key "
            "changed since it was set); set the BMC's password again"
        ) from None
