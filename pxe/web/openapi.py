"""``/api/v1/openapi.json``: the OpenAPI 3 description of every /api/v1 route.

Hand-written next to the routes; a test checks that every /api/v1 route the app serves
(registration included) is listed, so the two cannot drift.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from flask import Blueprint, Response, jsonify

from common import registration_key
from pxe.web import openapi_health, openapi_power, openapi_rolls

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
    body_required: bool = True,
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
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": kind},
    }


def _query(name: str, kind: str = "string", description: str = "", **limits: Any) -> dict[str, Any]:
    """``limits``: JSON Schema keywords (minimum, maximum, enum) the route enforces."""
    schema = {"type": kind, **limits}
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _ref(item)}}}


HOST_REF = _path_param("ref", "host id, MAC address or host name")
PROFILE = _path_param("name", "profile name")
POOL = _path_param("name", "pool name")
_OBJ = {"type": "object", "additionalProperties": True}
_STR = {"type": "string"}
_STRN = {"type": ["string", "null"]}
_OBJN = {"type": ["object", "null"], "additionalProperties": True}

# The values the store accepts (pxe.store.macs, names, hosts), so that what this document calls
# valid is valid. Patterns apply to strings only: null still passes where the type allows it.
_MAC_PATTERN = (
    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}$"
    r"|^[0-9A-Fa-f]{12}$|^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$"
)
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
_UUID_PATTERN = r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$"
_MAC = {"type": "string", "pattern": _MAC_PATTERN, "description": "aa:bb:cc:dd:ee:ff"}
_NAME = {"type": "string", "pattern": _NAME_PATTERN}
_HOSTNAME = {"type": "string", "maxLength": 253, "pattern": _HOSTNAME_PATTERN}
_UUID = {"type": "string", "pattern": _UUID_PATTERN, "description": "SMBIOS UUID"}
_TEXT = {"type": "string", "minLength": 1}
_SERIAL = {"type": "string", "pattern": r"\S"}  # not only blanks
_STATES = ["discovered", "ready", "installing", "installed", "registered", "in-pool", "failed"]


def _or_none(schema: dict[str, Any], pattern: str) -> dict[str, Any]:
    """``schema`` (a string), or null or the empty string: both mean none, or clear it."""
    return {**schema, "type": ["string", "null"], "pattern": f"^$|{pattern}"}


# What adding and editing take (pxe.web.api checks these types; a wrong one is a 400).
_HOST_FIELDS: dict[str, Any] = {
    "macs": {"type": "array", "items": _MAC},
    "hostname": _or_none(_HOSTNAME, _HOSTNAME_PATTERN),
    "uuid": _or_none(_UUID, _UUID_PATTERN),
    "serial": _STRN,
    "profile": _or_none(_NAME, _NAME_PATTERN),
    "pool": _or_none(_NAME, _NAME_PATTERN),
    "facts": _OBJ,
}
_PROFILE_FIELDS: dict[str, Any] = {
    "parent": _or_none(_NAME, _NAME_PATTERN),
    "release": _or_none(_NAME, _NAME_PATTERN),
    "template": {"type": ["string", "null"], "description": "bundled name or text"},
    "variables": _OBJN,
    "kernel_args": _STRN,
    "disk_rule": _OBJN,
    "pool": _or_none(_NAME, _NAME_PATTERN),
}
_LIMIT = _query("limit", "integer", minimum=1, maximum=100_000)
_OFFSET = _query("offset", "integer", minimum=0, maximum=100_000)

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
            "state": {"type": "string", "enum": _STATES},
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
        "properties": {"mac": _MAC, **_HOST_FIELDS},
        "additionalProperties": False,
        "anyOf": [
            {"required": ["mac"]},
            {"required": ["macs"], "properties": {"macs": {"minItems": 1}}},
            {"required": ["uuid"], "properties": {"uuid": _UUID}},
            {"required": ["serial"], "properties": {"serial": _SERIAL}},
        ],
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
        "properties": {"name": _NAME, **_PROFILE_FIELDS},
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
    "SelectorInput": {
        "type": "object",
        "required": ["profile", "field", "pattern"],
        "properties": {
            "profile": _NAME,
            "field": {"type": "string", "enum": ["mac", "uuid", "serial"]},
            "pattern": {
                "type": "string",
                "maxLength": 255,
                "pattern": r"\S",
                "description": "shell wildcards * ? [...]; not only blanks",
            },
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
        "properties": {"name": _NAME, "force": {"type": "boolean"}},
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
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "the report's number in this install; a number already recorded "
                "is answered again and not recorded twice",
            },
        },
    },
    "Failure": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": _STR,
            "log": {"type": "string", "description": "size-capped"},
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "the report's number in this install; a number already recorded "
                "is answered again and not recorded twice",
            },
        },
    },
    "BuildDone": {
        "type": "object",
        "properties": {
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "the report's number in this install; a number already recorded "
                "is answered again and not recorded twice",
            },
            registration_key.DIGEST_FIELD: {
                "type": ["string", "null"],
                "pattern": registration_key.DIGEST_PATTERN,
                "description": "sha256 (hex) of the registration key the installer left for the "
                "host's first boot, which may then register from any address with the key",
            },
        },
    },
    "State": {"type": "object", "properties": {"state": _STR}},
    "AuditEntry": {
        "type": "object",
        "description": "One admin action; request fields by name only, never their values.",
        "properties": {
            "id": {"type": "integer"},
            "time": _STR,
            "actor": {"type": "string", "description": "API token name, or cli:<unix user>"},
            "action": {"type": "string", "description": "METHOD /route, or hosts.reinstall..."},
            "target": _STR,
            "source": {"type": "string", "description": "client address; empty for the CLI"},
            "result": {"type": "string", "description": "ok, or the status and the reason"},
            "fields": {"type": "array", "items": _STR},
        },
    },
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
            "mac": _MAC,
            "cpu_vendor": _TEXT,
            "xen_version": _TEXT,
            "dom0_release": _TEXT,
            "network_backend": _TEXT,
            "management_ip": {
                "type": "string",
                "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                "description": "an IP address, or one with its /prefix",
            },
            "management_vlan": {"type": ["integer", "null"], "minimum": 0, "maximum": 4094},
            "cores": {"type": ["integer", "null"], "minimum": 1, "maximum": 1 << 20},
            "memory": {"type": ["integer", "null"], "minimum": 0, "maximum": 1 << 50},
            "cpu_flags": {"type": ["array", "null"]},
            "nics": {"type": ["array", "null"]},
            "disks": {"type": ["array", "null"]},
            "hostname": _or_none(_HOSTNAME, _HOSTNAME_PATTERN),
            "pool": _or_none(_NAME, _NAME_PATTERN),
            registration_key.FIELD: {
                "type": ["string", "null"],
                "maxLength": registration_key.MAX_KEY_CHARS,
                "description": "the key the installer left on the host; never stored or shown",
            },
        },
        "additionalProperties": True,
    },
}

_HOST_FILTERS = [
    _query("state", description="empty: any state", enum=[*_STATES, ""]),
    _query("pool"),
    _query("profile"),
    _LIMIT,
    _OFFSET,
]
_SINCE = {
    **_query("since", description="RFC 3339 time, with its zone; empty: from the start"),
    "schema": {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]},
}
_EVENT_FILTERS = [_SINCE, _LIMIT]

PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {"get": _op("This document", _OBJ, security="", errors=())},
    "/api/v1/hosts": {
        "get": _op(
            "List hosts",
            _list_of("hosts", "Host"),
            params=_HOST_FILTERS,
            errors=(400, 401, 404),  # 404: no such pool or profile to filter by
        ),
        "post": _op(
            "Add a host (409: a MAC taken, or a profile or pool that does not exist)",
            _ref("Host"),
            status=201,
            body="HostInput",
            errors=(400, 401, 409),
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
            "Back to ready: the next boot installs again",
            _ref("Host"),
            errors=(400, 401, 404, 409),
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
            "Create a profile (409: the name taken, or a parent or pool that does not exist)",
            _ref("Profile"),
            status=201,
            body="ProfileInput",
            errors=(400, 401, 409),
        ),
    },
    "/api/v1/profiles/{name}": {
        "parameters": [PROFILE],
        "get": _op("Show a profile", _ref("Profile"), errors=(401, 404)),
        "patch": _op(
            "Edit a profile", _ref("Profile"), body="ProfileChanges", errors=(400, 401, 404, 409)
        ),
        "delete": _op(
            "Delete a profile (not while hosts, children or selectors use it)",
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
            "Add a selector",
            _ref("Selector"),
            status=201,
            body="SelectorInput",
            errors=(400, 401, 409),  # 409: no such profile
        ),
    },
    "/api/v1/selectors/{selector_id}": {
        "parameters": [_path_param("selector_id", "selector id", "integer")],
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
    "/api/v1/audit": {
        "get": _op(
            "The audit log of admin actions (API, dashboard, CLI), newest first",
            _list_of("audit", "AuditEntry"),
            params=[
                {
                    **_query("since", description="RFC 3339 time, or a span back: 30m, 1h, 2d"),
                    "schema": {
                        "anyOf": [
                            {"type": "string", "format": "date-time"},
                            {"type": "string", "pattern": "^([0-9]{1,5}[smhdw])?$"},
                        ]
                    },
                },
                _query("limit", "integer", minimum=1, maximum=10_000),
            ],
            errors=(400, 401),
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
            "Build done (-> installed); once only (a body {\"seq\": n} makes a retry safe)",
            _ref("State"),
            body="BuildDone",
            body_required=False,
            errors=(400, 401, 403, 409),
            security="installToken",
        ),
    },
}


def _operation(path: str, method: str = "get") -> str:
    """A link's ``operationRef``: the JSON pointer to the operation in this document."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


_HOST = "/api/v1/hosts/{ref}"
_PROFILE = "/api/v1/profiles/{name}"
_POOL = "/api/v1/pools/{name}"
_BY_ID = {"ref": "$response.body#/id"}
_NAME_OF = "$response.body#/name"
_BY_NAME = {"name": _NAME_OF}


def _to(path: str, method: str = "get", params: Any = None, body: Any = None) -> dict[str, Any]:
    link: dict[str, Any] = {"operationRef": _operation(path, method)}
    if params:
        link["parameters"] = params
    if body:
        link["requestBody"] = body
    return link


# What a created (or changed) resource leads to: the links clients follow, and the stateful
# tests use (tests/pxe/test_api_fuzz.py) to act on what they created.
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/hosts", "post", "201"): {
        "ShowHost": _to(_HOST, params=_BY_ID),
        "EditHost": _to(_HOST, "patch", _BY_ID),
        "RemoveHost": _to(_HOST, "delete", _BY_ID),
        "ReinstallHost": _to(f"{_HOST}/reinstall", "post", _BY_ID),
        "HostEvents": _to(f"{_HOST}/events", params=_BY_ID),
        "EventsOfHost": _to("/api/v1/events", params={"query.host": "$response.body#/id"}),
    },
    (_HOST, "patch", "200"): {
        "ShowHost": _to(_HOST, params=_BY_ID),
        "RemoveHost": _to(_HOST, "delete", _BY_ID),
    },
    (f"{_HOST}/reinstall", "post", "200"): {
        "ShowHost": _to(_HOST, params=_BY_ID),
        "HostEvents": _to(f"{_HOST}/events", params=_BY_ID),
    },
    ("/api/v1/profiles", "post", "201"): {
        "ShowProfile": _to(_PROFILE, params=_BY_NAME),
        "EditProfile": _to(_PROFILE, "patch", _BY_NAME),
        "DeleteProfile": _to(_PROFILE, "delete", _BY_NAME),
        "EffectiveProfile": _to(f"{_PROFILE}/effective", params=_BY_NAME),
        "AddSelector": _to("/api/v1/selectors", "post", body={"profile": _NAME_OF}),
        "ListSelectors": _to("/api/v1/selectors", params={"query.profile": _NAME_OF}),
        "AddHostWithProfile": _to("/api/v1/hosts", "post", body={"profile": _NAME_OF}),
        "HostsWithProfile": _to("/api/v1/hosts", params={"query.profile": _NAME_OF}),
        "AddChildProfile": _to("/api/v1/profiles", "post", body={"parent": _NAME_OF}),
    },
    (_PROFILE, "patch", "200"): {
        "ShowProfile": _to(_PROFILE, params=_BY_NAME),
        "EffectiveProfile": _to(f"{_PROFILE}/effective", params=_BY_NAME),
    },
    ("/api/v1/selectors", "post", "201"): {
        "RemoveSelector": _to(
            "/api/v1/selectors/{selector_id}", "delete", {"selector_id": "$response.body#/id"}
        ),
        "ShowProfile": _to(_PROFILE, params={"name": "$response.body#/profile"}),
    },
    ("/api/v1/pools", "post", "201"): {
        "ShowPool": _to(_POOL, params=_BY_NAME),
        "DeletePool": _to(_POOL, "delete", _BY_NAME),
        "AddHostInPool": _to("/api/v1/hosts", "post", body={"pool": _NAME_OF}),
        "HostsInPool": _to("/api/v1/hosts", params={"query.pool": _NAME_OF}),
        "AddProfileWithPool": _to("/api/v1/profiles", "post", body={"pool": _NAME_OF}),
    },
}
for (_path, _method, _status), _links in LINKS.items():
    PATHS[_path][_method]["responses"][_status]["links"] = _links

openapi_power.merge(PATHS, SCHEMAS)  # a host's BMC and power (pxe.web.api.power)
openapi_rolls.merge(PATHS, SCHEMAS)  # rolling reinstalls (pxe.web.api.reinstalls)
openapi_health.merge(PATHS, SCHEMAS)  # installed hosts' health reports (pxe.web.health)


_READ_METHODS = ("get", "head")
_ROLE_NOTES = {
    "viewer": "Any API token may call this: admin or viewer.",
    "admin": "Needs an API token with the admin role; a viewer token gets 403. Audited.",
}


def _with_roles(paths: dict[str, Any]) -> dict[str, Any]:
    """Every API-token operation says the least role it needs (``x-required-role``): a read
    any token, anything else admin, with the 403 a viewer token gets; and the 400 of a query
    parameter it does not take."""
    out: dict[str, Any] = {}
    for path, item in paths.items():
        out[path] = dict(item)
        for method, op in item.items():
            if method == "parameters" or {"apiToken": []} not in op.get("security", []):
                continue
            role = "viewer" if method in _READ_METHODS else "admin"
            note = _ROLE_NOTES[role]
            described = f"{op['description']} {note}" if op.get("description") else note
            noted = {**op, "description": described, "x-required-role": role}
            if role == "admin":
                denied = _json(_ref("Error"), "The token's role (viewer) may only read")
                noted["responses"] = {**op["responses"], "403": denied}
            # pxe.web.api refuses a query parameter not described here, on every operation.
            noted["responses"] = {**_errors(400), **noted["responses"]}
            out[path][method] = noted
    return out


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xcp-provision",
            "version": "1",
            "description": "Inventory, boot and install tracking of Xen hosts.",
        },
        "paths": _with_roles(PATHS),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "API token"},
                "installToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the host's one-time install token",
                },
                openapi_health.SCHEME: openapi_health.SECURITY_SCHEME,
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return jsonify(spec())


_RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@functools.cache
def query_names(rule: str, method: str) -> frozenset[str] | None:
    """The query parameters the description gives the operation behind a Flask URL ``rule``
    (``/api/v1/hosts/<ref>``), or None when it does not describe that operation."""
    path = _RULE_PARAM.sub(r"{\1}", rule)
    operation = PATHS.get(path, {}).get(method.lower())
    if operation is None:
        return None
    params = [*PATHS[path].get("parameters", []), *operation.get("parameters", [])]
    return frozenset(p["name"] for p in params if p.get("in") == "query")
