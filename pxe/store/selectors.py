"""Selectors: shell-wildcard patterns on MAC, SMBIOS UUID or serial that give a discovered host
its profile without an operator. Several selectors of a profile are alternatives (OR); across
profiles the oldest matching selector wins, so adding a selector never steals hosts silently."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Profile, Selector
from pxe.store.errors import InvalidInputError, NotFoundError
from pxe.store.names import row_id

FIELDS = ("mac", "uuid", "serial")


def add_selector(session: Session, profile: Profile, field: str, pattern: str) -> Selector:
    if field not in FIELDS:
        raise InvalidInputError(f"selector field {field!r} is not one of {', '.join(FIELDS)}")
    if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 255:
        raise InvalidInputError("a selector pattern is 1 to 255 characters (wildcards: * ? [...])")
    pattern = pattern.strip().lower()
    if field == "mac":
        pattern = pattern.replace("-", ":")
    selector = Selector(profile_id=profile.id, field=field, pattern=pattern)
    session.add(selector)
    session.flush()
    return selector


def list_selectors(session: Session, profile: Profile | None = None) -> list[Selector]:
    query = select(Selector).order_by(Selector.id)
    if profile is not None:
        query = query.where(Selector.profile_id == profile.id)
    return list(session.scalars(query))


def get_selector(session: Session, selector_id: int) -> Selector:
    selector = session.get(Selector, selector_id) if row_id(selector_id) is not None else None
    if selector is None:
        raise NotFoundError("selector", selector_id)
    return selector


def match_profile(
    session: Session, macs: Iterable[str] = (), uuid: str | None = None, serial: str | None = None
) -> Profile | None:
    """The profile of the oldest selector matching any of the host's identities."""
    values = {
        "mac": [m.lower() for m in macs],
        "uuid": [uuid.lower()] if uuid else [],
        "serial": [serial.lower()] if serial else [],
    }
    for selector in list_selectors(session):
        if any(fnmatchcase(v, selector.pattern) for v in values[selector.field]):
            return selector.profile
    return None
