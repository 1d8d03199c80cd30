"""Secrets: admin API tokens and hosts' one-time install tokens, stored only as sha256.

A token is 32 random bytes, so a plain sha256 is enough to make a stolen database useless and
keeps the check a single indexed lookup (no slow KDF on every request of an installing rack).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Update, select
from sqlalchemy.orm import Session

from pxe.db.models import ApiToken, Host, utcnow
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.hosts import update_unchanged_host
from pxe.store.lifecycle import INSTALLER_STATES

API_PREFIX = "xpa_"
INSTALL_PREFIX = "xpi_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_api_token(session: Session, name: str) -> str:
    """A new API token; the value is returned once and never stored."""
    name = name.strip()
    if not name:
        raise InvalidInputError("an API token needs a name")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise ConflictError(
            f"an API token named {name!r} exists; revoke it first or pick another name"
        )
    token = new_token(API_PREFIX)
    session.add(ApiToken(name=name, hash=hash_token(token)))
    session.flush()
    return token


def verify_api_token(session: Session, token: str) -> ApiToken | None:
    """The token's record when it is valid, else None."""
    if not token:
        return None
    digest = hash_token(token)
    record = session.scalar(select(ApiToken).where(ApiToken.hash == digest))
    if record is None or not hmac.compare_digest(record.hash, digest):
        return None
    return record


def list_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_api_token(session: Session, name: str) -> None:
    record = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if record is None:
        raise NotFoundError("API token", name)
    session.delete(record)


def issue_install_token(host: Host) -> str:
    """A fresh install token for ``host``; any earlier one stops working.

    Called each time the host is told to boot the installer, so the token in its iPXE script,
    its answer file and its installer's calls is always the latest one handed out.
    """
    token = new_token(INSTALL_PREFIX)
    host.install_token_hash = hash_token(token)
    host.token_spent = False
    host.updated_at = utcnow()
    return token


def store_install_token(
    host_id: int, token_hash: str, seen: datetime, also: Mapping[str, str] | None = None
) -> Update:
    """The statement making ``token_hash`` the host's install token (and writing the columns
    in ``also``) if the host is still as it was read at ``seen`` and still boots the
    installer; it changes no row otherwise."""
    values = {"install_token_hash": token_hash, "token_spent": False, **(also or {})}
    return update_unchanged_host(host_id, seen, values).where(
        Host.state.in_([s.value for s in INSTALLER_STATES])
    )


def host_for_install_token(session: Session, token: str) -> Host | None:
    """The host holding this install token (spent or not), or None."""
    if not token:
        return None
    return session.scalar(select(Host).where(Host.install_token_hash == hash_token(token)))


def spend_install_token(host: Host) -> None:
    """Mark the token used up (registration does this once the host joined its pool)."""
    host.token_spent = True
