"""/api/v1/audit: the audit log, newest first; every token (viewers too) may read it."""

from __future__ import annotations

from flask import Response, jsonify, request

from pxe.store.audit import audit_view, list_audit, parse_since
from pxe.web.api import admin_blueprint
from pxe.web.api.params import int_arg
from pxe.web.context import db

bp = admin_blueprint("audit")


@bp.get("/audit")
def audit() -> Response:
    since = request.args.get("since")
    rows = list_audit(
        db(),
        since=parse_since(since) if since else None,
        limit=int_arg("limit", 200, low=1, high=10_000) or 200,
    )
    return jsonify(audit=[audit_view(r) for r in rows])
