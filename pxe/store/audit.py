"""The audit log: who changed what, from where, when, and how it ended.

Rows are written by the API, the dashboard and the admin commands, never by hosts. They hold
no secret: a request's fields are kept by name only, and a refusal's sentence goes through
:func:`redact` so that no value the caller sent (a password in profile variables, a template's
text) is copied in, apart from names the caller chose for things (:data:`NAMING_FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Audit, utcnow
from pxe.store.errors import InvalidInputError

OK = "ok"
# Fields whose values name things (and are shown anyway in every listing): they may stand in
# the audit as targets and inside refusal sentences. Every other value is hidden.
NAMING_FIELDS = frozenset(
    {
        "name",
        "hostname",
        "mac",
        "macs",
        "uuid",
        "serial",
        "profile",
        "pool",
        "parent",
        "release",
        "field",
        "pattern",
        "role",
    }
)
REDACTED = "[hidden]"
# Five digits at most: 99999 weeks back still lands after the year 1, so no span overflows.
_RELATIVE = re.compile(r"^\s*(\d{1,5})\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# A quoted literal in an error sentence, repr- or JSON-style, perhaps cut short ("abc...);
# a quote right after a letter is an apostrophe ("token's"), not an opening one.
_QUOTED = re.compile(r"""(?<!\w)(?:'(?:[^'\\]|\\.)*(?:'|$)|"(?:[^"\\]|\\.)*(?:"|$))""")
_MIN_HIDDEN = 3  # shorter values ("a", "no") would blank out ordinary words


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str = "",
    source: str = "",
    result: str = OK,
    fields: Iterable[str] = (),
) -> Audit:
    """Add one audit row to ``session``; it is written when the caller commits."""
    row = Audit(
        time=utcnow(),
        actor=actor[:160],
        action=action[:160],
        target=target[:255],
        source=source[:64],
        result=result[:2000],
        fields=sorted(set(fields)),
    )
    session.add(row)
    return row


def list_audit(session: Session, *, since: datetime | None = None, limit: int = 200) -> list[Audit]:
    """Newest first, at most ``limit``."""
    query = select(Audit)
    if since is not None:
        query = query.where(Audit.time >= since)
    return list(session.scalars(query.order_by(Audit.time.desc(), Audit.id.desc()).limit(limit)))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time with a zone, or a span back from now: 90s, 30m, 1h, 2d, 1w."""
    match = _RELATIVE.match(text)
    if match:
        amount, unit = match.groups()
        return (now or utcnow()) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        value = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"since={text!r} is neither an ISO 8601 time nor a span like 30m, 1h or 2d"
            " (at most five digits)"
        ) from exc
    if value.tzinfo is None:
        raise InvalidInputError(f"since={text!r} needs a time zone (e.g. a trailing Z)")
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def naming_values(body: Mapping[str, Any]) -> set[str]:
    """The values of ``body``'s naming fields: safe to show."""
    return {s for key in NAMING_FIELDS & set(body) for s in _strings(body[key])}


def hidden_values(body: Mapping[str, Any]) -> set[str]:
    """Every value of ``body`` outside its naming fields, at any depth: never to be shown."""
    return {s for key in set(body) - NAMING_FIELDS for s in _strings(body[key])}


def redact(sentence: str, *, hide: Iterable[str] = (), keep: Iterable[str] = ()) -> str:
    """``sentence`` without any of the values in ``hide`` and with every quoted literal
    blanked unless it is one of ``keep`` (a field name, a host's or profile's name).

    Error sentences quote what was wrong, sometimes cut short; a value the caller sent in a
    secret-bearing field must not reach the audit that way, quoted or not."""
    kept = set(keep)

    def quoted(match: re.Match[str]) -> str:
        literal = match.group(0)
        inner = literal[1:-1] if len(literal) > 1 and literal[-1] == literal[0] else literal[1:]
        return literal if inner in kept else REDACTED

    out = _QUOTED.sub(quoted, sentence)
    for value in sorted({v for v in hide if len(v) >= _MIN_HIDDEN} - kept, key=len, reverse=True):
        out = out.replace(value, REDACTED)
    return out


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def audit_view(row: Audit) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": _time(row.time),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "source": row.source,
        "result": row.result,
        "fields": list(row.fields or []),
    }
