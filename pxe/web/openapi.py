"""``/api/v1/openapi.json``: the OpenAPI 3 description of every /api/v1 route.

Hand-written next to the routes; a test checks that every /api/v1 route the app serves
(registration included) is listed, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed input",
        401: "Missing or unknown token",
        403: "Token not valid here",
        404: "Not found",
        409: "Conflicts with the current state",
        503: "Not yet: ask again after Retry-After seconds",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _op(
    summary: str,
    ok: dict[str, Any] | None = None,
    *,
    status: int = 200,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (401,),
    security: str = "apiToken",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{security: []}] if security else [],
        "responses": {
            str(status): _json(ok) if ok is not None else {"description": "Done"},
            **_errors(*errors),
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, kind: str = "string", description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind}}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _ref(item)}}}


HOST_REF = _path_param("ref", "host id, MAC address or host name")
PROFILE = _path_param("name", "profile name")
POOL = _path_param("name", "pool name")
_OBJ = {"type": "object", "additionalProperties": True}
_STR = {"type": "string"}
_STRN = {"type": ["string", "null"]}
_OBJN = {"type": ["object", "null"], "additionalProperties": True}

# What adding and editing take (pxe.web.api checks these types; a wrong one is a 400).
_HOST_FIELDS: dict[str, Any] = {
    "macs": {"type": "array", "items": _STR},
    "hostname": _STRN,
    "uuid": _STRN,
    "serial": _STRN,
    "profile": _STRN,
    "pool": _STRN,
    "facts": _OBJ,
}
_PROFILE_FIELDS: dict[str, Any] = {
    "parent": _STRN,
    "release": _STRN,
    "template": {"type": ["string", "null"], "description": "bundled name or text"},
    "variables": _OBJN,
    "kernel_args": _STRN,
    "disk_rule": _OBJN,
    "pool": _STRN,
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
    "Host": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "hostname": _STRN,
            "macs": {"type": "array", "items": _STR},
            "uuid": _STRN,
            "serial": _STRN,
            "arch": _STRN,
            "state": {
                "type": "string",
                "enum": [
                    "discovered",
                    "ready",
                    "installing",
                    "installed",
                    "registered",
                    "in-pool",
                    "failed",
                ],
            },
            "state_reason": _STR,
            "profile": _STRN,
            "pool": _STRN,
            "facts": _OBJ,
            "refusal_reasons": {"type": "array", "items": _STR},
            "token_spent": {"type": "boolean"},
            "created_at": _STR,
            "updated_at": _STR,
        },
    },
    "HostInput": {
        "type": "object",
        "description": "At least one of macs, mac, uuid, serial.",
        "properties": {"mac": _STR, **_HOST_FIELDS},
        "additionalProperties": False,
    },
    "HostChanges": {
        "type": "object",
        "description": "The fields to change, at least one; null clears a field (not macs).",
        "properties": _HOST_FIELDS,
        "minProperties": 1,
        "additionalProperties": False,
    },
    "Profile": {
        "type": "object",
        "properties": {
            "name": _STR,
            "parent": _STRN,
            "release": _STRN,
            "template": {"type": ["string", "null"], "description": "bundled name or text"},
            "variables": _OBJ,
            "kernel_args": _STR,
            "disk_rule": _OBJ,
            "pool": _STRN,
            "selectors": {"type": "array", "items": _ref("Selector")},
        },
    },
    "ProfileInput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": _STR, **_PROFILE_FIELDS},
        "additionalProperties": False,
    },
    "ProfileChanges": {
        "type": "object",
        "description": "The fields to change, at least one; null clears a field.",
        "properties": _PROFILE_FIELDS,
        "minProperties": 1,
        "additionalProperties": False,
    },
    "Selector": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "profile": _STR,
            "field": {"type": "string", "enum": ["mac", "uuid", "serial"]},
            "pattern": {"type": "string", "description": "shell wildcards * ? [...]"},
        },
    },
    "Pool": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": _STR,
            "master": {"type": ["string", "integer", "null"]},
            "force": {"type": "boolean"},
            "members": {"type": "array", "items": _OBJ},
            "refused": {"type": "array", "items": _OBJ},
            "pending": {"type": "array", "items": _OBJ},
            "master_address": _STRN,
        },
    },
    "PoolInput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": _STR, "force": {"type": "boolean"}},
    },
    "Event": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "host_id": {"type": "integer"},
            "time": _STR,
            "kind": _STR,
            "step": _STR,
            "percent": {"type": ["integer", "null"]},
            "message": _STR,
        },
    },
    "Progress": {
        "type": "object",
        "required": ["step"],
        "properties": {
            "step": _STR,
            "percent": {"type": "number", "minimum": 0, "maximum": 100},
            "message": _STR,
        },
    },
    "Failure": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": _STR, "log": {"type": "string", "description": "size-capped"}},
    },
    "State": {"type": "object", "properties": {"state": _STR}},
    "Registration": {
        "type": "object",
        "description": "What the first-boot agent reports; more facts are kept as they come.",
        "required": [
            "mac",
            "cpu_vendor",
            "xen_version",
            "dom0_release",
            "network_backend",
            "management_ip",
        ],
        "properties": {
            "mac": _STR,
            "cpu_vendor": _STR,
            "xen_version": _STR,
            "dom0_release": _STR,
            "network_backend": _STR,
            "management_ip": _STR,
        },
        "additionalProperties": True,
    },
}

_HOST_FILTERS = [
    _query("state"),
    _query("pool"),
    _query("profile"),
    _query("limit", "integer"),
    _query("offset", "integer"),
]
_EVENT_FILTERS = [_query("since", description="ISO 8601 time"), _query("limit", "integer")]

PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {"get": _op("This document", _OBJ, security="", errors=())},
    "/api/v1/hosts": {
        "get": _op(
            "List hosts", _list_of("hosts", "Host"), params=_HOST_FILTERS, errors=(400, 401)
        ),
        "post": _op(
            "Add a host", _ref("Host"), status=201, body="HostInput", errors=(400, 401, 404, 409)
        ),
    },
    "/api/v1/hosts/{ref}": {
        "parameters": [HOST_REF],
        "get": _op("Show a host (with its failure log)", _ref("Host"), errors=(401, 404)),
        "patch": _op(
            "Edit a host; a profile given to a discovered host makes it ready",
            _ref("Host"),
            body="HostChanges",
            errors=(400, 401, 404, 409),
        ),
        "delete": _op("Remove a host", status=204, errors=(401, 404)),
    },
    "/api/v1/hosts/{ref}/reinstall": {
        "parameters": [HOST_REF],
        "post": _op(
            "Back to ready: the next boot installs again", _ref("Host"), errors=(401, 404, 409)
        ),
    },
    "/api/v1/hosts/{ref}/events": {
        "parameters": [HOST_REF],
        "get": _op(
            "A host's events",
            _list_of("events", "Event"),
            params=_EVENT_FILTERS,
            errors=(400, 401, 404),
        ),
    },
    "/api/v1/profiles": {
        "get": _op("List profiles", _list_of("profiles", "Profile")),
        "post": _op(
            "Create a profile",
            _ref("Profile"),
            status=201,
            body="ProfileInput",
            errors=(400, 401, 404, 409),
        ),
    },
    "/api/v1/profiles/{name}": {
        "parameters": [PROFILE],
        "get": _op("Show a profile", _ref("Profile"), errors=(401, 404)),
        "patch": _op(
            "Edit a profile", _ref("Profile"), body="ProfileChanges", errors=(400, 401, 404, 409)
        ),
        "delete": _op(
            "Delete a profile (not while hosts or children use it)",
            status=204,
            errors=(401, 404, 409),
        ),
    },
    "/api/v1/profiles/{name}/effective": {
        "parameters": [PROFILE],
        "get": _op("The profile with its parents folded in", _OBJ, errors=(401, 404, 409)),
    },
    "/api/v1/selectors": {
        "get": _op(
            "List selectors",
            _list_of("selectors", "Selector"),
            params=[_query("profile")],
            errors=(401, 404),
        ),
        "post": _op(
            "Add a selector", _ref("Selector"), status=201, body="Selector", errors=(400, 401, 404)
        ),
    },
    "/api/v1/selectors/{selector_id}": {
        "parameters": [_path_param("selector_id", "selector id")],
        "delete": _op("Remove a selector", status=204, errors=(401, 404)),
    },
    "/api/v1/pools": {
        "get": _op("List pools", _list_of("pools", "Pool")),
        "post": _op(
            "Create a pool", _ref("Pool"), status=201, body="PoolInput", errors=(400, 401, 409)
        ),
    },
    "/api/v1/pools/{name}": {
        "parameters": [POOL],
        "get": _op("Show a pool: master, members, refused hosts", _ref("Pool"), errors=(401, 404)),
        "delete": _op("Delete an empty pool", status=204, errors=(401, 404, 409)),
    },
    "/api/v1/events": {
        "get": _op(
            "Recent events of all hosts",
            _list_of("events", "Event"),
            params=[_query("host"), _query("kind"), *_EVENT_FILTERS],
            errors=(400, 401, 404),
        ),
    },
    "/api/v1/installs/events": {
        "post": _op(
            "Installer progress (ready -> installing)",
            _ref("State"),
            status=202,
            body="Progress",
            errors=(400, 401, 403, 409),
            security="installToken",
        ),
    },
    "/api/v1/installs/failed": {
        "post": _op(
            "Installer failure with its log (-> failed)",
            _ref("State"),
            status=202,
            body="Failure",
            errors=(400, 401, 403, 409),
            security="installToken",
        ),
    },
    "/api/v1/register": {
        "post": _op(
            "A first-booted host registers; the answer says which pool it joins and how",
            _OBJ,
            body="Registration",
            errors=(400, 401, 403, 409, 503),
            security="installToken",
        ),
    },
    "/api/v1/installs/done": {
        "post": _op(
            "Build done (-> installed); once only",
            _ref("State"),
            errors=(401, 403, 409),
            security="installToken",
        ),
    },
}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xcp-provision",
            "version": "1",
            "description": "Inventory, boot and install tracking of Xen hosts.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "API token"},
                "installToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the host's one-time install token",
                },
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return jsonify(spec())
