"""Errors as JSON ``{"error": "..."}`` with the status their class names."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

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


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return error_response(500, f"internal error: {type(exc).__name__}; see the server log")


def install(app: Flask) -> None:
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
