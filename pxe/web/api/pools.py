"""/api/v1/pools: list, create, show (master, members, refused hosts), delete."""

from __future__ import annotations

from flask import Response, jsonify

from pxe.pools_view import pool_detail
from pxe.store import pools as store
from pxe.store.errors import InvalidInputError
from pxe.store.views import pool_view
from pxe.web.api import admin_blueprint
from pxe.web.api.params import check_types, flag, text
from pxe.web.context import db, json_body

bp = admin_blueprint("pools")

_CREATE_FIELDS = {"name": text("a pool name"), "force": flag()}


@bp.get("/pools")
def list_pools() -> Response:
    return jsonify(pools=[pool_view(p) for p in store.list_pools(db())])


@bp.post("/pools")
def create_pool() -> tuple[Response, int]:
    body = json_body()
    check_types(body, _CREATE_FIELDS)
    if not body.get("name"):
        raise InvalidInputError("a pool needs a 'name'")
    session = db(write=True)
    pool = store.create_pool(session, body["name"], force=body.get("force", False))
    session.commit()
    return jsonify(pool_view(pool)), 201


@bp.get("/pools/<name>")
def show_pool(name: str) -> Response:
    session = db()
    return jsonify(pool_detail(session, store.get_pool(session, name, by_id=False)))


@bp.delete("/pools/<name>")
def delete_pool(name: str) -> tuple[str, int]:
    session = db(write=True)
    store.delete_pool(session, store.get_pool(session, name, by_id=False))
    session.commit()
    return "", 204
