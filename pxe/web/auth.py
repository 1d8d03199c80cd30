"""Bearer tokens: admin API tokens for people and tools, install tokens for hosts."""

from __future__ import annotations

from datetime import timedelta

from flask import g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from pxe.db.models import ApiToken, utcnow
from pxe.store.install_reports import Reporter, token_holder
from pxe.store.tokens import verify_api_token
from pxe.web.context import db, state

# Recording every use would make each read a write; once in a while is enough to audit.
_LAST_USED_EVERY = timedelta(minutes=5)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_api_token() -> None:
    """A ``before_request`` hook: 401 unless the request carries a valid API token."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("this API needs 'Authorization: Bearer <API token>'")
    record = verify_api_token(db(), token)
    if record is None:
        raise Unauthorized("unknown or revoked API token")
    g.api_token_name = record.name
    g.api_token_role = record.role
    _note_use(record)


def _note_use(record: ApiToken) -> None:
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_EVERY:
        session = db(write=True)
        fresh = session.get(ApiToken, record.id)
        if fresh is not None:
            fresh.last_used_at = now
            session.commit()


def install_reporter(*, allow_spent: bool = False) -> Reporter:
    """The host whose install token the request carries.

    401 without a token, 403 for a token no host holds (or one already spent, unless
    ``allow_spent``)."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("host calls need 'Authorization: Bearer <install token>'")
    holder = token_holder(state().database, token)
    if holder is None:
        raise Forbidden("this install token is not valid (it may have been replaced)")
    if holder.token_spent and not allow_spent:
        raise Forbidden("this install token has been used up")
    return holder
