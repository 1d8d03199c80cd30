"""Dashboard sign-in: an API token once, then a signed session cookie; CSRF tokens for forms.

The cookie holds the token's row id and hash, never the token; every request looks the row up
again, so revoking the token (``xcp-provision tokens revoke``) ends its dashboard sessions at
once. The signing key is the server's own, kept in the data directory so sessions survive a
restart and no key is ever written in the code.
"""

from __future__ import annotations

import hmac
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask, Request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from pxe.config import Settings
from pxe.db.models import ApiToken
from pxe.store.tokens import verify_api_token
from pxe.web.context import db

UI_PREFIX = "/ui/"  # every dashboard page that reads or writes the session
SECRET_FILE = "dashboard-secret-key"  # noqa: S105 (a file name)
SESSION_HOURS = 12
_CSRF = "csrf"


class SecretKeyError(Exception):
    """The dashboard's key file exists but cannot be used."""


def secret_key(data_dir: Path) -> bytes:
    """The key in ``<data_dir>/dashboard-secret-key``, made (0600, 32 random bytes) if absent.

    Several worker processes start at once: the key is written whole under a temporary name
    and linked into place, so a reader never sees a half-written file and the first link wins.
    """
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise SecretKeyError(
            f"{path} holds a key shorter than 32 bytes; delete it to make a new one"
        )
    return key


class DashboardSessions(SecureCookieSessionInterface):
    """Sessions for the dashboard's pages only.

    Flask opens a session on every request, building a signing serializer each time; hosts,
    installers and API clients never send the cookie, and a booting rack is thousands of their
    requests. Elsewhere Flask gets its null session, which it never saves.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(UI_PREFIX):
            return None
        return super().open_session(app, request)


def configure(app: Flask, settings: Settings) -> None:
    app.session_interface = DashboardSessions()
    app.secret_key = secret_key(settings.data_dir)
    app.config.update(
        SESSION_COOKIE_NAME="xcp_provision_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Behind a TLS proxy (public_url https://...) the cookie never travels in clear.
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )


def sign_in(token: str) -> str | None:
    """Start a session for this API token; its name, or None when the token is not valid."""
    record = verify_api_token(db(), token.strip())
    if record is None:
        return None
    session.clear()
    session["token_id"] = record.id
    session["token_hash"] = record.hash
    session["since"] = datetime.now(UTC).isoformat()
    session[_CSRF] = secrets.token_urlsafe(32)
    return record.name


def sign_out() -> None:
    session.clear()


def signed_in_token() -> ApiToken | None:
    """The session's API token (its name and role), or None (no session, expired, revoked).

    The role is read from the row on every request, never kept in the cookie."""
    token_id, token_hash, since = (session.get(k) for k in ("token_id", "token_hash", "since"))
    if not (isinstance(token_id, int) and isinstance(token_hash, str) and isinstance(since, str)):
        return None
    try:
        started = datetime.fromisoformat(since)
    except ValueError:
        return None
    if datetime.now(UTC) - started > timedelta(hours=SESSION_HOURS):
        return None
    record = db().get(ApiToken, token_id)
    if record is None or not hmac.compare_digest(record.hash, token_hash):
        return None
    return record


def csrf_token() -> str:
    """The session's CSRF token (made on first use, so the login form has one too)."""
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


def csrf_valid(submitted: str | None) -> bool:
    expected = session.get(_CSRF)
    return (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and hmac.compare_digest(expected, submitted)
    )
