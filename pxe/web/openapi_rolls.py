"""The OpenAPI description of rolling reinstalls (pxe.web.api.reinstalls), merged into
``/api/v1/openapi.json`` by :func:`merge`."""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_STRN = {"type": ["string", "null"]}
_NAMES = {"type": "array", "items": _STR}
_ERROR_TEXT = {
    400: "Malformed input",
    401: "Missing or unknown token",
    404: "Not found",
    409: "The selection is empty, names something unknown, or holds hosts that cannot be "
    "reinstalled (no profile, no BMC with power, already in a running roll)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(_ref("Error"), _ERROR_TEXT[c]) for c in codes}


_ROLL_STATUS = {"type": "string", "enum": ["running", "done", "failed"]}
_HOST_STATUS = {"type": "string", "enum": ["waiting", "starting", "running", "done", "failed"]}

SCHEMAS: dict[str, Any] = {
    "RollInput": {
        "type": "object",
        "additionalProperties": False,
        "description": "Which hosts (every criterion given must hold; at least one) and how.",
        "anyOf": [
            {"required": ["pool"], "properties": {"pool": {"type": "string", "minLength": 1}}},
            {
                "required": ["profile"],
                "properties": {"profile": {"type": "string", "minLength": 1}},
            },
            {"required": ["hosts"], "properties": {"hosts": {"type": "array", "minItems": 1}}},
        ],
        "properties": {
            "pool": {**_STRN, "description": "the hosts of this pool"},
            "profile": {**_STRN, "description": "the hosts with this profile"},
            "hosts": {**_NAMES, "description": "host ids, MACs or host names, in this order"},
            "power": {
                "type": "boolean",
                "description": "through each host's BMC: next boot from the network (once) and "
                "a power cycle; without it, each host reinstalls at its next network boot",
            },
            "max_parallel": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "description": "hosts reinstalled at once (default 1); the next starts when "
                "one reaches installed or in-pool",
            },
            "continue_on_failure": {
                "type": "boolean",
                "description": "go on past a failed host (default: stop starting new ones)",
            },
            "host_timeout": {
                "type": "integer",
                "minimum": 60,
                "maximum": 604800,
                "description": "seconds a started host may take to be installed (default 3600)",
            },
        },
    },
    "RollHost": {
        "type": "object",
        "properties": {
            "host_id": {"type": ["integer", "null"]},
            "hostname": _STR,
            "status": _HOST_STATUS,
            "state": {**_STRN, "description": "the host's lifecycle state now"},
            "started_at": _STRN,
            "finished_at": _STRN,
            "message": _STR,
        },
    },
    "RollStep": {
        "type": "object",
        "properties": {
            "time": _STR,
            "host_id": {"type": ["integer", "null"]},
            "step": _STR,
            "message": _STR,
        },
    },
    "Roll": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": _ROLL_STATUS,
            "pool": _STRN,
            "profile": _STRN,
            "power": {"type": "boolean"},
            "max_parallel": {"type": "integer"},
            "continue_on_failure": {"type": "boolean"},
            "host_timeout": {"type": "integer"},
            "requested_by": _STR,
            "message": _STR,
            "driver": {**_STRN, "description": "the server process driving it"},
            "created_at": _STR,
            "updated_at": _STR,
            "finished_at": _STRN,
            "done": _NAMES,
            "running": _NAMES,
            "waiting": _NAMES,
            "failed": _NAMES,
            "hosts": {"type": "array", "items": _ref("RollHost")},
            "steps": {"type": "array", "items": _ref("RollStep")},
        },
    },
}

_SECURITY = [{"apiToken": []}]

PATHS: dict[str, Any] = {
    "/api/v1/reinstalls": {
        "get": {
            "summary": "Rolling reinstalls, newest first",
            "security": _SECURITY,
            "parameters": [
                {"name": "status", "in": "query", "schema": _ROLL_STATUS},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"reinstalls": {"type": "array", "items": _ref("Roll")}},
                    },
                    "OK",
                ),
                **_errors(400, 401),
            },
        },
        "post": {
            "summary": "Reinstall a pool, a profile's hosts or a list of hosts, N at a time",
            "description": "Answered at once; the server then starts the hosts max_parallel at "
            "a time and stops at a failed one unless continue_on_failure.",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("RollInput")}},
            },
            "responses": {"201": _json(_ref("Roll"), "Created"), **_errors(400, 401, 409)},
        },
    },
    "/api/v1/reinstalls/{roll_id}": {
        "parameters": [
            {"name": "roll_id", "in": "path", "required": True, "schema": {"type": "integer"}}
        ],
        "get": {
            "summary": "A roll: hosts done, running, waiting and failed, and its steps",
            "security": _SECURITY,
            "responses": {"200": _json(_ref("Roll"), "OK"), **_errors(401, 404)},
        },
    },
}


def merge(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    schemas.update(SCHEMAS)
    paths.update(PATHS)
