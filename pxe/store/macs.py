"""MAC addresses in one spelling, so lookups never miss on case or separators."""

from __future__ import annotations

import ipaddress
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


def slaac_address(prefix: ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """The address stateless autoconfiguration gives the NIC with ``mac`` on the /64 ``prefix``:
    the prefix and the MAC's modified EUI-64 (RFC 4291, appendix A: ``ff:fe`` in the middle, the
    universal/local bit flipped). Linux does this under its default address generation, without
    privacy extensions, so it is the one address such a host can be expected at.

    Raises ValueError for a prefix other than a /64 (SLAAC forms addresses on a /64 alone) and
    InvalidInputError for a value that is not a MAC.
    """
    if prefix.prefixlen != 64:
        raise ValueError(f"SLAAC needs a /64 prefix, not {prefix}")
    octets = bytes.fromhex(normalise_mac(mac).replace(":", ""))
    eui64 = bytearray(octets[:3] + b"\xff\xfe" + octets[3:])
    eui64[0] ^= 0x02
    return ipaddress.IPv6Address(int(prefix.network_address) | int.from_bytes(eui64, "big"))
