"""Who is asking to boot, as the firmware describes itself, cleaned once per request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pxe.store.errors import InvalidInputError
from pxe.store.hosts import normalise_uuid
from pxe.store.macs import normalise_mac

# Firmware placeholders many boards ship instead of a real identity; never match hosts on them.
_JUNK_UUIDS = frozenset(
    {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}
)
_JUNK_SERIAL = re.compile(
    r"^(|0+|1234567890|0123456789|default string|to be filled by o\.e\.m\.|not specified|"
    r"system serial number|none|n/a)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Identity:
    """What a booting machine told us about itself, cleaned of firmware junk."""

    mac: str
    uuid: str | None = None
    serial: str | None = None
    arch: str | None = None

    @classmethod
    def clean(
        cls, mac: str, uuid: str | None = None, serial: str | None = None, arch: str | None = None
    ) -> Identity:
        """Raises InvalidInputError for a malformed MAC; drops a malformed or placeholder UUID
        and serial (iPXE sends what the firmware has, which is often nothing useful)."""
        clean_uuid = None
        if uuid:
            try:
                clean_uuid = normalise_uuid(uuid)
            except InvalidInputError:
                clean_uuid = None
            if clean_uuid in _JUNK_UUIDS:
                clean_uuid = None
        clean_serial = serial.strip()[:128] if serial else None
        if clean_serial is not None and _JUNK_SERIAL.match(clean_serial):
            clean_serial = None
        clean_arch = re.sub(r"[^A-Za-z0-9_-]", "", arch)[:32] if arch else None
        return cls(normalise_mac(mac), clean_uuid, clean_serial, clean_arch or None)
