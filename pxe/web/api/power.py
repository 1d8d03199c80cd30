"""/api/v1/hosts/{ref}/bmc and /power: a host's BMC, its power state and power actions.

A BMC that fails answers 502 with one sentence naming the host, the BMC and what failed
(pxe.bmc.service); the password set with PUT is never sent back by any route.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from pxe.bmc import service
from pxe.bmc.driver import PowerAction
from pxe.store import hosts as host_store
from pxe.store.bmc import BmcSettings, get_bmc
from pxe.store.errors import InvalidInputError
from pxe.store.views import bmc_view
from pxe.web.api import admin_blueprint
from pxe.web.api.params import Field, check_types, flag, text
from pxe.web.context import db, json_body, settings, state

bp = admin_blueprint("power")

BMC_FIELDS = {
    "driver": text("ipmi or redfish"),
    "address": text("a host name, an IP address or (Redfish) a URL"),
    "port": Field("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "username": text("a string"),
    "system_path": text("a path such as /redfish/v1/Systems/1", null=True),
    "verify_tls": flag(),
}
_REQUIRED = ("driver", "username")  # no address: the one the host's installer reported
ACTIONS = tuple(a.value for a in PowerAction)


def _bmc_settings(body: dict[str, Any]) -> BmcSettings:
    unknown = set(body) - {*BMC_FIELDS, "password"}
    if unknown:
        raise InvalidInputError(
            f"unknown BMC field(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join([*BMC_FIELDS, 'password'])}"
        )
    missing = [name for name in _REQUIRED if not body.get(name)]
    if missing:
        raise InvalidInputError(f"a BMC needs {', '.join(missing)}")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInputError("'password' must be a string")  # never echoed back
    check_types(body, BMC_FIELDS)
    return BmcSettings(
        driver=body["driver"],
        address=body.get("address") or "",
        username=body["username"],
        password=password,
        port=body.get("port"),
        system_path=body.get("system_path") or "",
        verify_tls=body.get("verify_tls", True),
    )


@bp.put("/hosts/<ref>/bmc")
def put_bmc(ref: str) -> Response:
    given = _bmc_settings(json_body())
    session = db(write=True)
    host = host_store.get_host(session, ref)
    view = service.set_bmc(session, settings(), host, given, g.api_token_name)
    session.commit()
    return jsonify(view)


@bp.get("/hosts/<ref>/bmc")
def show_bmc(ref: str) -> Response:
    session = db()
    view = bmc_view(get_bmc(session, host_store.get_host(session, ref)))
    if view is None:
        raise service.NoBmcError(host_store.get_host(session, ref))
    return jsonify(view)


@bp.delete("/hosts/<ref>/bmc")
def delete_bmc(ref: str) -> tuple[str, int]:
    session = db(write=True)
    host = host_store.get_host(session, ref)
    if not service.remove_bmc(session, host, g.api_token_name):
        raise service.NoBmcError(host)
    session.commit()
    return "", 204


@bp.get("/hosts/<ref>/power")
def power_status(ref: str) -> Response:
    fresh = request.args.get("fresh", "").lower() in ("1", "true", "yes")
    reading = service.power_status(state().database, settings(), ref, fresh=fresh)
    return jsonify({"host": ref, **reading.view()})


@bp.post("/hosts/<ref>/power")
def power_action(ref: str) -> tuple[Response, int]:
    body = json_body()
    unknown = set(body) - {"action"}
    if unknown:
        raise InvalidInputError(f"unknown field(s) {', '.join(sorted(unknown))}; known: action")
    action = body.get("action")
    if action not in ACTIONS:
        raise InvalidInputError(f"'action' must be one of {', '.join(ACTIONS)}")
    result = service.power_action(
        state().database, settings(), ref, PowerAction(action), g.api_token_name
    )
    return jsonify(result), 202


def reinstall_power_requested() -> bool:
    """Whether a reinstall's body asks for ``{"power": true}`` (pxe.web.api.hosts)."""
    body = json_body()
    power = body.get("power", False)
    if not isinstance(power, bool):
        raise InvalidInputError("'power' must be true or false")
    return power


def reinstall_with_power(ref: str) -> Response:
    """The reinstall route with ``{"power": true}``: through the host's BMC."""
    return jsonify(
        service.reinstall_with_power(state().database, settings(), ref, g.api_token_name)
    )
