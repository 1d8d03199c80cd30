"""Where and how the server sends dynamic DNS updates.

The TSIG secret lives in a file (raw base64, or the key block ``tsig-keygen`` prints) and is read
when an update is signed: never on a command line, where ``ps`` would show it, and never copied
into the settings object, so it is not logged or echoed with the configuration.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name
import dns.tsig

from pxe.dns.errors import DnsSettingsError

ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
_KEY_BLOCK_SECRET = re.compile(r'secret\s+"([^"]+)"\s*;')
REQUIRED = ("server", "forward_zone", "reverse_zones", "key_name", "secret_file")
_REVERSE_ROOTS = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


@dataclass(frozen=True)
class DnsSettings:
    server: str
    forward_zone: str
    # in-addr.arpa and ip6.arpa zones alike; reverse_zone_for picks the one a PTR goes in.
    reverse_zones: tuple[str, ...]
    key_name: str
    secret_file: Path
    port: int = 53
    algorithm: str = "hmac-sha256"
    ttl: int = 300
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.algorithm.lower() not in ALGORITHMS:
            raise DnsSettingsError(
                f"DNS algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}"
            )
        if not 0 < self.port < 65536:
            raise DnsSettingsError(f"DNS port {self.port} is not between 1 and 65535")
        if not self.reverse_zones:
            raise DnsSettingsError("DNS settings lack reverse_zones")
        for zone in self.reverse_zones:
            if not any(dns.name.from_text(zone).is_subdomain(root) for root in _REVERSE_ROOTS):
                raise DnsSettingsError(
                    f"reverse zone {zone} is not under in-addr.arpa. or ip6.arpa.; name the "
                    "zones PTR records go in, such as 2.0.192.in-addr.arpa."
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DnsSettings | None:
        """Build from the ``[dns]`` settings table; ``None`` when DNS updates are not configured.

        A table with a server but without zones or key is a mistake worth stopping for, not a
        silent "DNS off". ``reverse_zones`` is a sequence of zones or one comma-separated text.
        """
        if not values or not values.get("server"):
            return None
        missing = [key for key in REQUIRED if not values.get(key)]
        if missing:
            raise DnsSettingsError(f"DNS settings lack {', '.join(missing)}")
        try:
            return cls(
                server=str(values["server"]),
                forward_zone=_absolute(values["forward_zone"]),
                reverse_zones=_zones(values["reverse_zones"]),
                key_name=str(values["key_name"]),
                secret_file=Path(values["secret_file"]),
                port=int(values.get("port", 53)),
                algorithm=str(values.get("algorithm", "hmac-sha256")).lower(),
                ttl=int(values.get("ttl", 300)),
                timeout=float(values.get("timeout", 5.0)),
            )
        except (TypeError, ValueError) as exc:
            raise DnsSettingsError(f"DNS settings are invalid: {exc}") from exc

    def reverse_zone_for(self, reverse_name: dns.name.Name) -> str | None:
        """The most specific reverse zone holding ``reverse_name``, None when none does: one
        site may delegate 10.in-addr.arpa. and, inside it, 2.0.10.in-addr.arpa. elsewhere."""
        holding = [
            zone
            for zone in self.reverse_zones
            if reverse_name.is_subdomain(dns.name.from_text(zone))
        ]
        return max(holding, key=lambda zone: len(dns.name.from_text(zone)), default=None)

    def tsig_key(self) -> dns.tsig.Key:
        """The signing key, with the secret read from its file now."""
        return dns.tsig.Key(
            self.key_name, read_secret(self.secret_file), ALGORITHMS[self.algorithm.lower()]
        )


def _absolute(zone: object) -> str:
    return dns.name.from_text(str(zone)).to_text()


def _zones(zones: object) -> tuple[str, ...]:
    """Absolute zone names, each once, from a sequence or a comma-separated text."""
    items = zones.split(",") if isinstance(zones, str) else zones
    if not isinstance(items, Sequence):
        raise ValueError(f"reverse zones {zones!r} are neither a list nor a comma-separated text")
    names = (str(item).strip() for item in items)
    return tuple(dict.fromkeys(_absolute(name) for name in names if name))


def read_secret(path: Path) -> str:
    """The base64 TSIG secret in ``path``: a bare secret or a BIND ``key { secret "..."; }``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DnsSettingsError(f"cannot read the TSIG secret file {path}: {exc.strerror}") from exc
    match = _KEY_BLOCK_SECRET.search(text)
    secret = match.group(1) if match else text.strip()
    if not secret:
        raise DnsSettingsError(f"the TSIG secret file {path} is empty")
    try:
        base64.b64decode(secret, validate=True)
    except binascii.Error as exc:
        raise DnsSettingsError(
            f"the TSIG secret in {path} is not base64 (expected what tsig-keygen prints)"
        ) from exc
    return secret
