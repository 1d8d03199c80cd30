"""/api/v1/events: the recent history of every host, filterable."""

from __future__ import annotations

from flask import Response, jsonify, request

from pxe.store.events import list_events
from pxe.store.hosts import get_host
from pxe.store.views import event_view
from pxe.web.api import admin_blueprint
from pxe.web.api.params import int_arg, time_arg
from pxe.web.context import db

bp = admin_blueprint("events")


@bp.get("/events")
def events() -> Response:
    session = db()
    host_ref = request.args.get("host")
    events = list_events(
        session,
        host=get_host(session, host_ref) if host_ref else None,
        kind=request.args.get("kind") or None,
        since=time_arg("since"),
        limit=int_arg("limit", 200, low=1) or 200,
    )
    return jsonify(events=[event_view(e) for e in events])
