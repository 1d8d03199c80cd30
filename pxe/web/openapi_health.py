"""The OpenAPI description of an installed host's health reports (pxe.web.health), merged into
``/api/v1/openapi.json`` by :func:`merge`: the report route, what a host shows of its health,
and the report token the registration answer carries."""

from __future__ import annotations

from typing import Any

from pxe.health_report import ARRAY_STATES, MAX_ARRAYS, MAX_MEMBERS, SYNC_ACTIONS, RaidState

HEALTH = "/api/v1/health"
SCHEME = "reportToken"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "the host's report token, from its registration answer",
}
_STR = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_MEMBERS}
_ERRORS = {
    400: "A missing or bad field, named in 'field'",
    401: "No report token, or one no host holds now (reinstalled, or registered again)",
    503: "The inventory database is unavailable; ask again after Retry-After seconds",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ARRAY_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "pattern": r"^md[A-Za-z0-9_.-]{1,32}$", "description": "md127"},
    "level": {"type": "string", "pattern": "^[a-z0-9]{1,16}$", "description": "raid1"},
    "members": {**_COUNT, "description": "members present and in sync; at most expected"},
    "expected": {**_COUNT, "description": "members the array is made of (md/raid_disks)"},
    "array_state": {"type": "string", "enum": list(ARRAY_STATES)},
    "sync_action": {"type": ["string", "null"], "enum": [*SYNC_ACTIONS, None]},
    "progress": {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 100,
        "description": "percent done of the running sync action",
    },
}
_STATES = [state.value for state in RaidState]

SCHEMAS: dict[str, Any] = {
    "HealthReport": {
        "type": "object",
        "description": "What the first-boot agent reads of this host's software RAID (sysfs).",
        "required": ["raid"],
        "properties": {
            "raid": {
                "type": "array",
                "maxItems": MAX_ARRAYS,
                "items": _ref("RaidArrayReport"),
                "description": "every md array; empty without software RAID",
            },
        },
    },
    "RaidArrayReport": {
        "type": "object",
        "required": ["name", "level", "members", "expected", "array_state"],
        "properties": _ARRAY_FIELDS,
    },
    "RaidArray": {
        "type": "object",
        "properties": {
            **_ARRAY_FIELDS,
            "state": {
                "type": "string",
                "enum": _STATES[1:],
                "description": "as the server judges it: failed, resyncing, degraded or clean",
            },
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "raid_state": {
                "type": "string",
                "enum": _STATES,
                "description": "the worst array's state; none: no software RAID",
            },
            "raid": {"type": "array", "items": _ref("RaidArray")},
        },
    },
    "HostHealth": {
        "type": ["object", "null"],
        "description": "What the host last reported of its health; null before its first report.",
        "properties": {
            "raid_state": {"type": "string", "enum": _STATES},
            "raid": {"type": "array", "items": _ref("RaidArray")},
            "reported_at": _STR,
        },
    },
}

PATHS: dict[str, Any] = {
    HEALTH: {
        "post": {
            "summary": "An installed host reports its health (its software RAID arrays); a "
            "change of an array's state is an event of the host",
            "security": [{SCHEME: []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("HealthReport")}},
            },
            "responses": {
                "200": _json(_ref("Health"), "Kept"),
                **{str(code): _json(_ref("Error"), text) for code, text in _ERRORS.items()},
            },
        },
    },
}


def merge(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add the report route and its schemas; a host shows its health, and the registration
    answer says it carries the report token."""
    schemas.update(SCHEMAS)
    paths.update(PATHS)
    host = schemas.get("Host")
    if host is not None:
        host["properties"]["health"] = _ref("HostHealth")
    register = paths.get("/api/v1/register", {}).get("post")
    if register is not None:
        register["description"] = (
            "A 200 answer carries `report_token`: the host's credential for POST "
            f"{HEALTH} from then on, new at every registration (the one before stops working)."
        )
