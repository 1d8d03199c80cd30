"""The admin REST API under /api/v1: one blueprint per resource, all behind API tokens."""

from __future__ import annotations

from flask import Blueprint

from pxe.web.auth import require_api_token

PREFIX = "/api/v1"


def admin_blueprint(name: str) -> Blueprint:
    """A blueprint under /api/v1 whose every route needs an API token."""
    bp = Blueprint(f"api_{name}", __name__, url_prefix=PREFIX)
    bp.before_request(require_api_token)
    return bp
