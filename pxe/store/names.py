"""The one rule for names of profiles, pools and tokens, so they are safe in URLs and tables."""

from __future__ import annotations

import re

from pxe.store.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{kind} name {name!r} is not valid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
