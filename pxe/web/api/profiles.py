"""/api/v1/profiles and /api/v1/selectors."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response, jsonify, request

from pxe.store import profiles as store
from pxe.store import selectors
from pxe.store.errors import InvalidInputError
from pxe.store.views import profile_view, selector_view
from pxe.web.api import admin_blueprint
from pxe.web.api.params import changes_body, check_types, mapping, references, text
from pxe.web.context import db, json_body

bp = admin_blueprint("profiles")

# The JSON type of every field a profile takes; null clears a field.
FIELDS = {
    "parent": text("a profile name", null=True),
    "release": text("a release name", null=True),
    "template": text("a bundled template's name or a template's text", null=True),
    "variables": mapping(null=True),
    "kernel_args": text(null=True),
    "disk_rule": mapping(null=True),
    "pool": text("a pool name", null=True),
}
_CREATE_FIELDS = {"name": text("a profile name"), **FIELDS}
_SELECTOR_FIELDS = {
    "profile": text("a profile name"),
    "field": text("mac, uuid or serial"),
    "pattern": text("a wildcard pattern string"),
}


@bp.get("/profiles")
def list_profiles() -> Response:
    return jsonify(profiles=[profile_view(p) for p in store.list_profiles(db())])


@bp.post("/profiles")
def create_profile() -> tuple[Response, int]:
    body = json_body()
    check_types(body, _CREATE_FIELDS)
    name = body.pop("name", None)
    if not name:
        raise InvalidInputError("a profile needs a 'name'")
    session = db(write=True)
    with references():
        profile = store.create_profile(session, name, **body)
    session.commit()
    return jsonify(profile_view(profile)), 201


@bp.get("/profiles/<name>")
def show_profile(name: str) -> Response:
    return jsonify(profile_view(store.get_profile(db(), name, by_id=False)))


@bp.get("/profiles/<name>/effective")
def effective_profile(name: str) -> Response:
    """The profile with its parents folded in, as hosts using it get it."""
    return jsonify(asdict(store.resolve_profile(store.get_profile(db(), name, by_id=False))))


@bp.patch("/profiles/<name>")
def edit_profile(name: str) -> Response:
    session = db(write=True)
    changes = changes_body(FIELDS)
    profile = store.get_profile(session, name, by_id=False)
    with references():
        profile = store.update_profile(session, profile, **changes)
    session.commit()
    return jsonify(profile_view(profile))


@bp.delete("/profiles/<name>")
def delete_profile(name: str) -> tuple[str, int]:
    session = db(write=True)
    store.delete_profile(session, store.get_profile(session, name, by_id=False))
    session.commit()
    return "", 204


@bp.get("/selectors")
def list_selectors() -> Response:
    session = db()
    profile_name = request.args.get("profile")
    profile = store.get_profile(session, profile_name) if profile_name else None
    return jsonify(selectors=[selector_view(s) for s in selectors.list_selectors(session, profile)])


@bp.post("/selectors")
def add_selector() -> tuple[Response, int]:
    body = json_body()
    check_types(body, _SELECTOR_FIELDS)
    for key in ("profile", "field", "pattern"):
        if not body.get(key):
            raise InvalidInputError(f"a selector needs '{key}'")
    session = db(write=True)
    with references():
        profile = store.get_profile(session, body["profile"])
    selector = selectors.add_selector(session, profile, body["field"], body["pattern"])
    session.commit()
    return jsonify(selector_view(selector)), 201


@bp.delete("/selectors/<int:selector_id>")
def remove_selector(selector_id: int) -> tuple[str, int]:
    session = db(write=True)
    session.delete(selectors.get_selector(session, selector_id))
    session.commit()
    return "", 204
