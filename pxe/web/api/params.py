"""Query-string helpers that turn bad values into 400s, not 500s."""

from __future__ import annotations

from datetime import datetime

from flask import request

from pxe.store.errors import InvalidInputError


def int_arg(name: str, default: int | None, *, low: int = 0, high: int = 100_000) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInputError(f"query parameter {name}={raw!r} is not a whole number") from exc
    if not low <= value <= high:
        raise InvalidInputError(f"query parameter {name} must be between {low} and {high}")
    return value


def time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(f"query parameter {name}={raw!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise InvalidInputError(f"query parameter {name} needs a time zone (e.g. a trailing Z)")
    return value
