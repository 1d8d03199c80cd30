"""Errors as JSON ``{"error": "..."}`` with the status their class names.

A database outage (PostgreSQL restarting, a connection lost) is a 503 with Retry-After, never a
500: the request was fine, the caller should send it again (the first-boot agent and the
installer do), and nothing of it was committed in part.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from pxe.db.write_retry import database_unavailable
from pxe.store.errors import StoreError

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def _store_error(exc: StoreError) -> tuple[Response, int]:
    return error_response(exc.status, str(exc))


# The exception's own headers describe its body (HTML); ours is JSON.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    """The JSON error, with the headers the status needs that werkzeug's exception carries:
    Allow on a 405 (RFC 9110), WWW-Authenticate on a 401, Retry-After on a 503..."""
    response, status = error_response(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() not in _BODY_HEADERS:
            response.headers.add(name, value)
    return response, status


DATABASE_RETRY_AFTER_S = 2


def _unexpected(exc: Exception) -> tuple[Response, int]:
    if database_unavailable(exc):
        log.warning("database unavailable, answered 503: %s", exc)
        response, status = error_response(
            503, "the inventory database is unavailable right now; try again shortly"
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response, status
    log.exception("unhandled error")
    return error_response(500, f"internal error: {type(exc).__name__}; see the server log")


def install(app: Flask) -> None:
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
