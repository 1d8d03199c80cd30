"""The OpenAPI description of a host's BMC and power routes (pxe.web.api.power), merged into
``/api/v1/openapi.json`` by :func:`merge`; the reinstall route gains its ``{"power": true}``
body and the 502 of a failing BMC."""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_HOST_REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "description": "host id, MAC address or host name",
    "schema": {"type": "string"},
}
_ERROR_TEXT = {
    400: "Malformed input",
    401: "Missing or unknown token",
    404: "Not found",
    409: "Conflicts with the current state (the host has no BMC, or cannot be reinstalled)",
    502: "The BMC did not answer, refused the credentials or failed; nothing was changed",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[str, Any] | None,
    *,
    status: int = 200,
    body: str | None = None,
    errors: tuple[int, ...] = (401, 404),
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"apiToken": []}],
        "responses": {
            str(status): _json(ok, "OK") if ok is not None else {"description": "Done"},
            **{str(c): _json(_ref("Error"), _ERROR_TEXT[c]) for c in errors},
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


SCHEMAS: dict[str, Any] = {
    "Bmc": {
        "type": "object",
        "description": "A host's BMC; its password is never shown.",
        "properties": {
            "driver": {"type": "string", "enum": ["ipmi", "redfish"]},
            "address": _STR,
            "port": {"type": "integer"},
            "username": _STR,
            "system_path": {"type": ["string", "null"]},
            "verify_tls": {"type": "boolean"},
            "updated_at": _STR,
        },
    },
    "BmcInput": {
        "type": "object",
        "required": ["driver", "username"],
        "additionalProperties": False,
        "properties": {
            "driver": {"type": "string", "enum": ["ipmi", "redfish"]},
            "address": {
                "type": "string",
                "description": "host name or IP; for Redfish also an http(s):// URL; "
                "left out, the address the host's installer read from its BMC",
            },
            "port": {
                "type": "integer",
                "minimum": 1,
                "maximum": 65535,
                "description": "default 623 (IPMI), 443 (Redfish)",
            },
            "username": _STR,
            "password": {
                "type": "string",
                "writeOnly": True,
                "description": "kept encrypted; required the first time, omit to keep it",
            },
            "system_path": {
                "type": ["string", "null"],
                "description": "Redfish only, e.g. /redfish/v1/Systems/1",
            },
            "verify_tls": {"type": "boolean", "description": "Redfish only; default true"},
        },
    },
    "PowerState": {
        "type": "object",
        "properties": {
            "host": _STR,
            "power": {"type": "string", "enum": ["on", "off", "powering-on", "powering-off"]},
            "read_at": _STR,
            "cached": {"type": "boolean", "description": "read from the BMC a moment ago"},
        },
    },
    "PowerInput": {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {
                "type": "string",
                "enum": ["on", "off", "cycle"],
                "description": "cycle: a hard reset when on, power on when off",
            }
        },
    },
    "PowerAccepted": {
        "type": "object",
        "properties": {"host": _STR, "action": _STR, "requested_by": _STR},
    },
    "ReinstallInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "power": {
                "type": "boolean",
                "description": "also through the BMC: next boot from the network (once) and a "
                "power cycle; the host is unchanged if the BMC fails",
            }
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/hosts/{ref}/bmc": {
        "parameters": [_HOST_REF],
        "get": _op("A host's BMC (never its password)", _ref("Bmc"), errors=(401, 404, 409)),
        "put": _op("Set a host's BMC", _ref("Bmc"), body="BmcInput", errors=(400, 401, 404)),
        "delete": _op("Remove a host's BMC", None, status=204, errors=(401, 404, 409)),
    },
    "/api/v1/hosts/{ref}/power": {
        "parameters": [_HOST_REF],
        "get": _op(
            "A host's power state, read from its BMC (or a reading of the last seconds)",
            _ref("PowerState"),
            errors=(401, 404, 409, 502),
            params=[
                {
                    "name": "fresh",
                    "in": "query",
                    "description": "true: ask the BMC now, not the cache",
                    "schema": {"type": "boolean"},
                }
            ],
        ),
        "post": _op(
            "Power a host on, off or cycle it; answered once its BMC acknowledged",
            _ref("PowerAccepted"),
            status=202,
            body="PowerInput",
            errors=(400, 401, 404, 409, 502),
        ),
    },
}

_REINSTALL = "/api/v1/hosts/{ref}/reinstall"


def merge(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add these routes and schemas to the API's; the reinstall operation, described with the
    hosts, gains an optional body and the 502 of a BMC."""
    schemas.update(SCHEMAS)
    paths.update(PATHS)
    reinstall = paths.get(_REINSTALL, {}).get("post")
    if reinstall is not None:
        reinstall["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref("ReinstallInput")}},
        }
        reinstall["responses"]["502"] = _json(_ref("Error"), _ERROR_TEXT[502])
