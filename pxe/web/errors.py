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


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return error_response(exc.code or 500, exc.description or exc.name)


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return error_response(500, f"internal error: {type(exc).__name__}; see the server log")


def install(app: Flask) -> None:
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
