"""Secrets: admin API tokens, hosts' one-time install tokens and their report tokens, stored
only as sha256.

A token is 32 random bytes, so a plain sha256 is enough to make a stolen database useless and
keeps the check a single indexed lookup (no slow KDF on every request of an installing rack).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    false,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from pxe.db.models import ApiToken, Host, HostHealth, utcnow
from pxe.db.prepared import PreparedWrite
from pxe.db.session import Database
from pxe.db.write_retry import write_prepared
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.lifecycle import INSTALLER_STATES, State

API_PREFIX = "xpa_"
INSTALL_PREFIX = "xpi_"
REPORT_PREFIX = "xph_"
# What an API token may do: an admin changes things; a viewer only reads (GET and HEAD on the
# API, the dashboard without its actions).
ADMIN = "admin"
VIEWER = "viewer"
ROLES = (ADMIN, VIEWER)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_api_token(session: Session, name: str, role: str = ADMIN) -> str:
    """A new API token; the value is returned once and never stored."""
    name = name.strip()
    if not name:
        raise InvalidInputError("an API token needs a name")
    if role not in ROLES:
        raise InvalidInputError(f"unknown API token role {role!r}; known: {', '.join(ROLES)}")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise ConflictError(
            f"an API token named {name!r} exists; revoke it first or pick another name"
        )
    token = new_token(API_PREFIX)
    session.add(ApiToken(name=name, hash=hash_token(token), role=role))
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

    The boot decision calls this only while the current token is unused (no answer file
    fetched with it yet): see :mod:`pxe.boot.decide` for the once-per-cycle rule.
    """
    token = new_token(INSTALL_PREFIX)
    host.install_token_hash = hash_token(token)
    host.token_spent = False
    host.token_claimed_at = None
    host.token_bound_addr = None
    host.registration_key_hash = None
    host.queued_at = None
    host.updated_at = utcnow()
    return token


def slots_taken() -> ColumnElement[int]:
    """The number of hosts holding one of the ``max_concurrent_installs`` slots (installing, or
    ready with a token handed out), as an expression for a boot's statements.

    Two counts added rather than one count of either: each is a range of the index on (state,
    install token), read without the table, where the OR made SQLite look up the row of every
    ready host, queued or not, on every boot request."""
    installing, ready = aliased(Host), aliased(Host)
    count_installing = (
        select(func.count()).select_from(installing)
        .where(installing.state == State.INSTALLING.value)
    )  # fmt: skip
    count_ready = (
        select(func.count()).select_from(ready)
        .where(ready.state == State.READY.value, ready.install_token_hash.is_not(None))
    )  # fmt: skip
    return count_installing.scalar_subquery() + count_ready.scalar_subquery()


# What a boot request may fill in on its host's row (pxe.boot.decide's ``_reported``): each
# column keeps its value unless the request gives one.
REPORTED_COLUMNS = ("smbios_uuid", "serial", "arch")

# The host's row as it was read at ``seen``: every change moves ``updated_at``.
_UNCHANGED = (Host.id == bindparam("host_id"), Host.updated_at == bindparam("seen"))


def _kept_unless_given(name: str) -> ColumnElement[Any]:
    column = getattr(Host, name)
    return func.coalesce(bindparam(name, type_=column.type), column)


def _reported_values() -> dict[str, ColumnElement[Any]]:
    return {name: _kept_unless_given(name) for name in REPORTED_COLUMNS}


def _reported_params(reported: Mapping[str, str]) -> dict[str, str | None]:
    """The statements' value for each reported column (None: keep it). A column they do not
    write is refused here rather than dropped."""
    unknown = set(reported) - set(REPORTED_COLUMNS)
    if unknown:
        raise ValueError(f"a boot cannot write {sorted(unknown)}: add it to REPORTED_COLUMNS")
    return {name: reported.get(name) for name in REPORTED_COLUMNS}


# A boot that hands out no token: the identity the request reported, and when the host was
# first queued for an install slot. Compiled once, as every statement a booting rack repeats
# (pxe.db.prepared): building it per request was an eighth of a boot lookup.
_RECORD_BOOT = PreparedWrite(
    update(Host)
    .where(*_UNCHANGED)
    .values(**_reported_values(), queued_at=_kept_unless_given("queued_at"),
            updated_at=bindparam("updated"))
)  # fmt: skip


def _store_token(capped: bool) -> PreparedWrite:
    installer_state = or_(*(Host.state == state.value for state in sorted(INSTALLER_STATES)))
    statement = (
        update(Host)
        .where(*_UNCHANGED, installer_state, Host.token_claimed_at.is_(None))
        .values(install_token_hash=bindparam("token_hash"), token_spent=false(), queued_at=null(),
                **_reported_values(), updated_at=bindparam("updated"))
    )  # fmt: skip
    if capped:
        statement = statement.where(slots_taken() < bindparam("cap"))
    return PreparedWrite(statement)


_STORE_TOKEN = _store_token(capped=False)
_STORE_TOKEN_CAPPED = _store_token(capped=True)


def record_boot(
    database: Database, host_id: int, seen: datetime, reported: Mapping[str, str], *,
    queued: bool,
) -> bool:  # fmt: skip
    """Write what a boot reported (and, ``queued``, that the host waits for an install slot)
    if the host is still as it was read at ``seen``; False, changing nothing, otherwise."""
    now = utcnow()
    values = _reported_params(reported)
    return write_prepared(database, _RECORD_BOOT, host_id=host_id, seen=seen, updated=now,
                          queued_at=now if queued else None, **values) == 1  # fmt: skip


def store_install_token(
    database: Database,
    host_id: int,
    token_hash: str,
    seen: datetime,
    reported: Mapping[str, str],
    *,
    cap: int | None = None,
) -> bool:
    """Make ``token_hash`` the host's install token (and write what the boot reported) if the
    host is still as it was read at ``seen``, still boots the installer and its current token
    is unused; with ``cap``, only while fewer hosts than that hold an install slot (one
    statement, so exact where writers are serialised). False, changing nothing, otherwise."""
    values = _reported_params(reported)
    statement = _STORE_TOKEN if cap is None else _STORE_TOKEN_CAPPED
    extra = {} if cap is None else {"cap": cap}
    return write_prepared(database, statement, host_id=host_id, token_hash=token_hash, seen=seen,
                          updated=utcnow(), **values, **extra) == 1  # fmt: skip


_CLAIM = PreparedWrite(
    update(Host)
    .where(Host.id == bindparam("host_id"), Host.install_token_hash == bindparam("token_hash"),
           Host.token_bound_addr.is_(None))
    .values(token_bound_addr=bindparam("address"), token_claimed_at=bindparam("claimed"),
            install_attempts=Host.install_attempts + 1, updated_at=bindparam("updated"),
            report_seq=None)
)  # fmt: skip


def claim_install_token(database: Database, host_id: int, token_hash: str, address: str) -> bool:
    """Record the first use of the host's unused token ``token_hash``: bound to ``address`` from
    now on, one more install attempt, and its installer's reports numbered from 1 again (a new
    cycle). False, changing nothing, when the token was used already (or replaced). It moves
    ``updated_at``, so a boot decision read before it cannot hand out another token over it."""
    now = utcnow()
    claimed = write_prepared(database, _CLAIM, host_id=host_id, token_hash=token_hash,
                             address=address, claimed=now, updated=now)  # fmt: skip
    return claimed == 1


def host_for_install_token(session: Session, token: str) -> Host | None:
    """The host holding this install token (spent or not), or None."""
    if not token:
        return None
    return session.scalar(select(Host).where(Host.install_token_hash == hash_token(token)))


def host_for_report_token(session: Session, token: str) -> Host | None:
    """The host holding this report token, or None."""
    if not token:
        return None
    query = select(HostHealth.host_id).where(HostHealth.token_hash == hash_token(token))
    host_id = session.scalar(query)
    return session.get(Host, host_id) if host_id is not None else None
