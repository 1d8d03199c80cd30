"""/api/v1/hosts: list, add, show, edit, remove, reinstall, events."""

from __future__ import annotations

from flask import Response, jsonify, request

from pxe.registration import on_host_removed
from pxe.store import hosts as store
from pxe.store.errors import InvalidInputError
from pxe.store.events import list_events
from pxe.store.lifecycle import parse_state
from pxe.store.views import event_view, host_view
from pxe.web.api import admin_blueprint
from pxe.web.api import power as api_power
from pxe.web.api.params import (
    changes_body,
    check_types,
    int_arg,
    mapping,
    references,
    text,
    texts,
    time_arg,
)
from pxe.web.context import db, json_body, settings

bp = admin_blueprint("hosts")

# The JSON type of every field a host takes when added; null clears a field when editing.
FIELDS = {
    "mac": text("a MAC address string"),
    "macs": texts("a list of MAC address strings"),
    "hostname": text("a host name string", null=True),
    "uuid": text("an SMBIOS UUID string", null=True),
    "serial": text("a serial number string", null=True),
    "profile": text("a profile name", null=True),
    "pool": text("a pool name", null=True),
    "facts": mapping(),
}
_EDITABLE = {name: FIELDS[name] for name in store.EDITABLE}


@bp.get("/hosts")
def list_hosts() -> Response:
    state = request.args.get("state") or None
    if state:
        parse_state(state)
    hosts = store.list_hosts(
        db(),
        state=state,
        pool=request.args.get("pool") or None,
        profile=request.args.get("profile") or None,
        limit=int_arg("limit", 1000, low=1),
        offset=int_arg("offset", 0) or 0,
    )
    return jsonify(hosts=[host_view(h) for h in hosts])


@bp.post("/hosts")
def add_host() -> tuple[Response, int]:
    body = json_body()
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise InvalidInputError(
            f"unknown host field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}"
        )
    check_types(body, FIELDS)
    macs = body.get("macs", [])
    if "mac" in body:
        macs = [body["mac"], *macs]
    session = db(write=True)
    with references():
        host = store.add_host(
            session,
            macs=macs,
            hostname=body.get("hostname"),
            uuid=body.get("uuid"),
            serial=body.get("serial"),
            profile=body.get("profile"),
            pool=body.get("pool"),
            facts=body.get("facts"),
        )
    session.commit()
    return jsonify(host_view(host)), 201


@bp.get("/hosts/<ref>")
def show_host(ref: str) -> Response:
    host = store.get_host(db(), ref)
    return jsonify({**host_view(host), "failure_log": host.failure_log})


@bp.patch("/hosts/<ref>")
def edit_host(ref: str) -> Response:
    body = changes_body(_EDITABLE)
    session = db(write=True)
    host = store.get_host(session, ref)
    with references():
        host = store.update_host(session, host, **body)
    session.commit()
    return jsonify(host_view(host))


@bp.delete("/hosts/<ref>")
def remove_host(ref: str) -> tuple[str, int]:
    session = db(write=True)
    host = store.get_host(session, ref)
    on_host_removed(settings(), host)  # its DNS records; problems are logged, never fatal
    store.remove_host(session, host)
    session.commit()
    return "", 204


@bp.post("/hosts/<ref>/reinstall")
def reinstall_host(ref: str) -> Response:
    if api_power.reinstall_power_requested():  # {"power": true}: now, through its BMC
        return api_power.reinstall_with_power(ref)
    session = db(write=True)
    host = store.reinstall_host(session, store.get_host(session, ref))
    session.commit()
    return jsonify(host_view(host))


@bp.get("/hosts/<ref>/events")
def host_events(ref: str) -> Response:
    session = db()
    host = store.get_host(session, ref)
    events = list_events(
        session, host=host, since=time_arg("since"), limit=int_arg("limit", 200, low=1) or 200
    )
    return jsonify(events=[event_view(e) for e in events])
