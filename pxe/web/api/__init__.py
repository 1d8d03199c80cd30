"""The admin REST API under /api/v1: one blueprint per resource, all behind API tokens.

Every token reads; only an admin token changes things. Every call that may change something
(any method but GET and HEAD) is audited, refused ones included (pxe.web.audit_trail).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import Forbidden

from pxe.store.audit import hidden_values, naming_values
from pxe.store.errors import InvalidInputError
from pxe.store.tokens import ADMIN
from pxe.web import audit_trail
from pxe.web.auth import require_api_token
from pxe.web.openapi import query_names

PREFIX = "/api/v1"
READ_METHODS = frozenset({"GET", "HEAD"})
# Body fields that name what a new row will be called, in the order a target is taken from.
_TARGET_FIELDS = ("name", "hostname", "mac", "macs", "uuid", "serial", "profile")


def admin_blueprint(name: str) -> Blueprint:
    """A blueprint under /api/v1 whose every route needs an API token (an admin one to write)."""
    bp = Blueprint(f"api_{name}", __name__, url_prefix=PREFIX)
    bp.before_request(_authorise)
    bp.before_request(_known_query)
    bp.after_request(_audit_result)
    return bp


def _known_query() -> None:
    """A query parameter the API does not describe is refused, not ignored: a misspelt filter
    (``?stat=failed``) would otherwise answer as if there were none."""
    rule = request.url_rule.rule if request.url_rule is not None else ""
    allowed = query_names(rule, request.method)
    if allowed is None:
        return
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise InvalidInputError(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; this call takes: {takes}"
        )


def _body() -> dict[str, Any]:
    """The JSON object the request carries, for the audit only (the routes parse it again)."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _target(body: dict[str, Any]) -> str:
    if request.view_args:
        return "/".join(str(v) for v in request.view_args.values())
    for key in _TARGET_FIELDS:
        value = body.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value:
            return value
    return ""


def _authorise() -> None:
    require_api_token()  # a 401 is not audited: there is no one to put it on
    if request.method in READ_METHODS:
        return
    body = _body()
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    audit_trail.begin(
        actor=g.api_token_name,
        action=f"{request.method} {rule}",
        target=_target(body),
        fields=list(body),
        hide=hidden_values(body),
        keep={*naming_values(body), *(str(v) for v in (request.view_args or {}).values())},
    )
    if g.api_token_role != ADMIN:
        raise Forbidden(
            f"this API token's role is {g.api_token_role}, which may only read (GET, HEAD); "
            f"{request.method} needs a token with the {ADMIN} role"
        )


def _audit_result(response: Response) -> Response:
    error = None
    if response.status_code >= 400 and response.is_json:
        data = response.get_json(silent=True)
        error = data.get("error") if isinstance(data, dict) else None
    audit_trail.finish(response.status_code, error)
    return response
