"""/api/v1/reinstalls: rolling reinstalls of a pool, a profile's hosts or a list of hosts.

A POST records the roll and answers at once (201); ``serve``'s roll driver (pxe.rolls) then
starts the hosts ``max_parallel`` at a time. GET shows how far a roll got.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request

from pxe.store import rolls as store
from pxe.store.errors import InvalidInputError
from pxe.web.api import admin_blueprint
from pxe.web.api.params import Field, check_types, flag, int_arg, references, text, texts
from pxe.web.context import db, json_body

bp = admin_blueprint("reinstalls")


def _is_whole(value: object) -> bool:
    """JSON's integers: 3, and 3.0 too (JSON Schema counts it as one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer()


def _whole(expected: str) -> Field:
    return Field(expected, _is_whole)


FIELDS = {
    "pool": text("a pool name", null=True),
    "profile": text("a profile name", null=True),
    "hosts": texts("a list of host references (id, MAC or host name)"),
    "power": flag(),
    "max_parallel": _whole("a whole number"),
    "continue_on_failure": flag(),
    "host_timeout": _whole("a whole number of seconds"),
}


def request_from(body: dict) -> store.RollRequest:
    """The roll a JSON body asks for; 400 for unknown fields or wrong types."""
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise InvalidInputError(
            f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}"
        )
    check_types(body, FIELDS)
    return store.check_request(
        store.RollRequest(
            pool=body.get("pool") or None,
            profile=body.get("profile") or None,
            hosts=tuple(body.get("hosts") or ()),
            power=body.get("power", False),
            max_parallel=int(body.get("max_parallel", 1)),
            continue_on_failure=body.get("continue_on_failure", False),
            host_timeout=int(body.get("host_timeout", store.DEFAULT_HOST_TIMEOUT)),
        )
    )


@bp.post("/reinstalls")
def create_roll() -> tuple[Response, int]:
    wanted = request_from(json_body())
    session = db(write=True)
    with references():
        roll = store.create_roll(session, wanted, g.api_token_name)
    session.commit()
    response = jsonify(store.roll_view(session, roll))
    response.headers["Location"] = f"/api/v1/reinstalls/{roll.id}"
    return response, 201


@bp.get("/reinstalls")
def list_rolls() -> Response:
    session = db()
    rolls = store.list_rolls(
        session, status=request.args.get("status"), limit=int_arg("limit", 100, low=1)
    )
    return jsonify(reinstalls=[store.roll_view(session, r, steps=False) for r in rolls])


@bp.get("/reinstalls/<int:roll_id>")
def show_roll(roll_id: int) -> Response:
    session = db()
    return jsonify(store.roll_view(session, store.get_roll(session, roll_id)))
