"""The one rule for names of profiles, pools and tokens, so they are safe in URLs and tables."""

from __future__ import annotations

import re

from pxe.store.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# Row ids are 64-bit on every backend; a longer number names no row (and would not bind).
_MAX_ROW_ID = (1 << 63) - 1


def row_id(ref: object) -> int | None:
    """``ref`` as a row id when it spells one (an int, or ASCII digits in range), else None.

    Not ``str.isdigit`` alone: it is true of "²" and other digits ``int`` refuses."""
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        ref = int(ref)
    if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref <= _MAX_ROW_ID:
        return ref
    return None


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # match's $ allows a final \n
        raise InvalidInputError(
            f"{kind} name {name!r} is not valid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
