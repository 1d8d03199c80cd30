"""Request helpers that turn bad input into 400s, not 500s: query parameters and JSON bodies.

A JSON body's field types are checked here, once, before anything reaches the store: the
store's own checks are about values (is this a MAC address?), and a value of the wrong JSON
type (a number for a name, null for a list) would otherwise crash it or be stored as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request

from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError

_WHOLE = re.compile(r"-?[0-9]+")


def int_arg(name: str, default: int | None, *, low: int = 0, high: int = 100_000) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    # Digits only: int() would also take " 5", "5_0" and other scripts' digits.
    if not _WHOLE.fullmatch(raw):
        raise InvalidInputError(f"query parameter {name}={raw!r} is not a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInputError(f"query parameter {name} must be between {low} and {high}")
    return value


def time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw)
    except ValueError as exc:
        raise InvalidInputError(f"query parameter {name}={raw!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise InvalidInputError(f"query parameter {name} needs a time zone (e.g. a trailing Z)")
    return value


@contextmanager
def references() -> Iterator[None]:
    """Around the use of a body's references (a profile, a pool): one that names nothing is a
    409, never a 404, which would say the resource of the URL is gone."""
    try:
        yield
    except NotFoundError as exc:
        raise ConflictError(f"{exc}: create it first, or name another {exc.kind}") from exc


@dataclass(frozen=True)
class Field:
    """The JSON type a body field must have, in the words an error names it with."""

    expected: str  # "a list of MAC address strings"
    accepts: Callable[[Any], bool]
    nullable: bool = False  # null is allowed (it clears the field, or means "none")


def text(expected: str = "a string", *, null: bool = False) -> Field:
    return Field(expected, lambda v: isinstance(v, str), null)


def texts(expected: str) -> Field:
    return Field(expected, lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))


def mapping(*, null: bool = False) -> Field:
    return Field("an object", lambda v: isinstance(v, dict), null)


def flag() -> Field:
    return Field("true or false", lambda v: isinstance(v, bool))


def _shown(value: Any) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def check_types(body: Mapping[str, Any], fields: Mapping[str, Field]) -> None:
    """400 naming the first field of ``body`` whose value has the wrong JSON type; fields not
    in ``fields`` are left to the caller (which refuses or ignores them)."""
    for name, value in body.items():
        field = fields.get(name)
        if field is None or (value is None and field.nullable) or field.accepts(value):
            continue
        expected = f"{field.expected} or null" if field.nullable else field.expected
        raise InvalidInputError(f"{name!r} must be {expected}, not {_shown(value)}")


def changes_body(fields: Mapping[str, Field]) -> dict[str, Any]:
    """A PATCH body: a JSON object naming at least one of ``fields``, each of its JSON type.

    An empty body, ``{}`` or anything but an object is a 400: a PATCH that changes nothing is
    a client's mistake, not a success."""
    data = request.get_json(silent=True) if request.get_data(cache=True) else None
    if not isinstance(data, dict) or not data:
        *first, last = fields
        raise InvalidInputError(
            f"PATCH {request.path} needs a JSON object with at least one field to change: "
            f"{', '.join(first)} or {last}"
        )
    check_types(data, fields)
    return data
