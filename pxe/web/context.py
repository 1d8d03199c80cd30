"""Per-app state and per-request database sessions, for every blueprint (ours and others').

``db()`` gives the request's session, opened on first use and closed (rolled back if not
committed) when the request ends; ``db(write=True)`` gives one that holds SQLite's write lock
from its first statement. Blueprints never open engines themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session

from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.errors import InvalidInputError

EXTENSION = "xcp_provision"


@dataclass
class AppState:
    settings: Settings
    database: Database


def state() -> AppState:
    return current_app.extensions[EXTENSION]


def settings() -> Settings:
    return state().settings


def db(*, write: bool = False) -> Session:
    key = "_xcp_db_write" if write else "_xcp_db_read"
    session = g.get(key)
    if session is None:
        session = state().database.session(write=write)
        setattr(g, key, session)
    return session


def base_url() -> str:
    """How hosts reach us: the configured public URL, else the URL this request came in on.

    Scheme and Host header as they came: werkzeug's ``host_url`` also decodes them to an IRI,
    which was 2% of an answer file's cost, for a URL that goes back to iPXE as ASCII anyway."""
    return settings().base_url(f"{request.scheme}://{request.host}")


def client_address() -> str:
    """The address of the machine a request comes from, the one place every view asks.

    The peer of the connection, unless it is one of ``trusted_proxies``: then the last entry
    of X-Forwarded-For, the address that proxy saw (deploy/nginx.conf sets the header to it).
    A header sent by any other peer is ignored, so a host cannot pass for another by sending
    one; a value that is not an IP address leaves the peer. An IPv4 client of a socket that
    answers both families (``bind = "::"``) is its IPv4 address, as it would be on an IPv4
    socket: the address a token is bound to does not depend on the socket it came in on.
    """
    peer = _unmapped(request.remote_addr or "")
    if peer not in _trusted(settings().trusted_proxies):
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
    try:
        ip_address(forwarded)
    except ValueError:
        return peer
    return _unmapped(forwarded)


@lru_cache(maxsize=4096)
def _unmapped(address: str) -> str:
    """``address`` in its canonical form, an IPv4-mapped IPv6 one (::ffff:192.0.2.7) as IPv4.

    Remembered: a rack's few hundred addresses come back with every request, and each request
    asks twice (its view, its access line), at 2.5 us a parse on the 2-core machine."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


@lru_cache(maxsize=8)
def _trusted(setting: str) -> frozenset[str]:
    return frozenset(part.strip() for part in setting.split(",") if part.strip())


def _close_sessions(_exc: BaseException | None) -> None:
    for key in ("_xcp_db_write", "_xcp_db_read"):
        session = g.pop(key, None)
        if session is not None:
            session.close()


def install(app: Flask, app_state: AppState) -> None:
    app.extensions[EXTENSION] = app_state
    app.teardown_appcontext(_close_sessions)


def json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object."""
    if not request.get_data(cache=True):
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return data
