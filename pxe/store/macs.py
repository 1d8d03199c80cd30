"""MAC addresses in one spelling, so lookups never miss on case or separators."""

from __future__ import annotations

import re

from pxe.store.errors import InvalidInputError

_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_SEPARATED = re.compile(r"^[0-9a-f]{2}([:\-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$")
_DOTTED = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")


def format_mac(octets: bytes) -> str:
    """The one spelling of a hardware address: lower-case hex pairs joined by colons."""
    return ":".join(f"{octet:02x}" for octet in octets)


def normalise_mac(text: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any usual spelling (``AA-BB-..``, ``aabb.ccdd.eeff``, bare hex).

    Raises InvalidInputError naming the value when it is not a 48-bit MAC.
    """
    value = str(text).strip().lower()
    if _SEPARATED.match(value) or _DOTTED.match(value):
        digits = re.sub(r"[:\-.]", "", value)
    elif _HEX12.match(value):
        digits = value
    else:
        raise InvalidInputError(
            f"{text!r} is not a MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)"
        )
    return format_mac(bytes.fromhex(digits))


def is_mac(text: str) -> bool:
    try:
        normalise_mac(text)
    except InvalidInputError:
        return False
    return True
