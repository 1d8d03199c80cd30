"""The BMC of each host: set (checked), read, remove. The password comes in encrypted
(pxe.bmc.crypto) and is never read back here: the store only keeps the token."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from pxe.db.models import Bmc, Host, utcnow
from pxe.store import per_host
from pxe.store.errors import InvalidInputError
from pxe.store.macs import normalise_mac

IPMI = "ipmi"
REDFISH = "redfish"
DRIVERS = (IPMI, REDFISH)
DEFAULT_PORTS = {IPMI: 623, REDFISH: 443}
# IPMI 2.0 limits: a user name of 16 bytes, a password of 20.
_IPMI_USER_MAX = 16
_IPMI_PASSWORD_MAX = 20
_ADDRESS = re.compile(r"^(https?://)?[A-Za-z0-9.:\[\]%_-]+(:\d+)?/?$")


@dataclass(frozen=True)
class BmcSettings:
    """A BMC as an operator gives it; ``password`` in clear, None to keep the stored one."""

    driver: str
    address: str
    username: str
    password: str | None
    port: int | None = None
    system_path: str = ""
    verify_tls: bool = True


SEEN_FACT = "bmc_seen"  # the host fact holding what its installer read from its own BMC


@dataclass(frozen=True)
class BmcSeen:
    """A host's BMC as its installer read it in-band: an address the operator can take."""

    address: str
    source: str
    mac: str | None = None
    channel: int = 1

    def as_fact(self) -> dict[str, Any]:
        return asdict(self)


def check_seen(body: object) -> BmcSeen:
    """The installer's ``bmc`` report; InvalidInputError (a 400) naming what is wrong."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("'bmc' must be an object")
    given = body.get("address")
    try:
        address = ipaddress.ip_address(given if isinstance(given, str) else "")
    except ValueError as exc:
        raise InvalidInputError(f"'bmc.address' {given!r} is not an IP address") from exc
    source, mac, channel = body.get("source", ""), body.get("mac"), body.get("channel", 1)
    if not isinstance(source, str) or len(source) > 32:
        raise InvalidInputError("'bmc.source' must be a short string such as static or dhcp")
    if mac is not None and not isinstance(mac, str):
        raise InvalidInputError("'bmc.mac' must be a string")
    if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= 15:
        raise InvalidInputError("'bmc.channel' must be an IPMI channel from 1 to 15")
    return BmcSeen(str(address), source, normalise_mac(mac) if mac else None, channel)


def with_seen_address(host: Host, given: BmcSettings) -> BmcSettings:
    """``given``, its empty address replaced by the one the host's installer reported, so an
    operator assigns a BMC without looking its address up."""
    if given.address.strip():
        return given
    seen = (host.facts or {}).get(SEEN_FACT)
    if not isinstance(seen, dict) or not seen.get("address"):
        raise InvalidInputError(
            f"give the BMC address of host {host.hostname or host.id}: its installer has not "
            "reported one (it does when it finds an IPMI BMC)"
        )
    return replace(given, address=str(seen["address"]))


def check(given: BmcSettings) -> BmcSettings:
    """The settings with defaults filled in; InvalidInputError (a 400) naming what is wrong."""
    if given.driver not in DRIVERS:
        raise InvalidInputError(
            f"unknown BMC driver {given.driver!r}; drivers are {', '.join(DRIVERS)}"
        )
    address = given.address.strip()
    if not address or len(address) > 255 or not _ADDRESS.match(address):
        raise InvalidInputError(
            f"BMC address {given.address!r} is not a host name or an IP address"
            + (" (or an http(s):// URL)" if given.driver == REDFISH else "")
        )
    if "://" in address and given.driver != REDFISH:
        raise InvalidInputError("only a Redfish BMC's address may be a URL")
    port = DEFAULT_PORTS[given.driver] if given.port is None else given.port
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"BMC port {port} is not between 1 and 65535")
    username = given.username
    if not username or len(username) > 128:
        raise InvalidInputError("a BMC needs a user name (at most 128 characters)")
    if given.driver == IPMI and len(username.encode()) > _IPMI_USER_MAX:
        raise InvalidInputError(f"an IPMI user name has at most {_IPMI_USER_MAX} bytes")
    if given.password is not None:
        if not given.password:
            raise InvalidInputError("the BMC password is empty")
        if given.driver == IPMI and len(given.password.encode()) > _IPMI_PASSWORD_MAX:
            raise InvalidInputError(f"an IPMI password has at most {_IPMI_PASSWORD_MAX} bytes")
    path = given.system_path.strip()
    if path and given.driver != REDFISH:
        raise InvalidInputError("a system path is for Redfish BMCs only")
    if path and (not path.startswith("/") or len(path) > 255 or any(c.isspace() for c in path)):
        raise InvalidInputError(
            f"Redfish system path {given.system_path!r} must be a path such as "
            "/redfish/v1/Systems/1"
        )
    return BmcSettings(
        driver=given.driver,
        address=address,
        username=username,
        password=given.password,
        port=port,
        system_path=path,
        verify_tls=given.verify_tls,
    )


def get_bmc(session: Session, host: Host) -> Bmc | None:
    return session.get(Bmc, host.id)


_KNOWN = "xcp_bmcs"  # Session.info key of pxe.store.per_host


def bmc_of(host: Host) -> Bmc | None:
    """The host's BMC through the session the host was loaded in (None if detached), read
    with every other host's that session holds."""
    return per_host.row_of(host, Bmc, _KNOWN)


def set_bmc(
    session: Session, host: Host, given: BmcSettings, password_encrypted: str | None
) -> Bmc:
    """Set (or replace) ``host``'s BMC; ``password_encrypted`` None keeps the stored password,
    which a new BMC must have."""
    settings = check(given)
    bmc = session.get(Bmc, host.id)
    if bmc is None:
        if password_encrypted is None:
            raise InvalidInputError(
                f"host {host.hostname or host.id} has no BMC yet: give its password"
            )
        bmc = Bmc(host_id=host.id, created_at=utcnow())
        session.add(bmc)
    bmc.driver = settings.driver
    bmc.address = settings.address
    bmc.port = settings.port or DEFAULT_PORTS[settings.driver]
    bmc.username = settings.username
    if password_encrypted is not None:
        bmc.password_encrypted = password_encrypted
    bmc.system_path = settings.system_path
    bmc.verify_tls = settings.verify_tls
    bmc.updated_at = utcnow()
    session.flush()
    per_host.remember(session, _KNOWN, host.id, bmc)
    return bmc


def remove_bmc(session: Session, host: Host) -> bool:
    bmc = session.get(Bmc, host.id)
    if bmc is None:
        return False
    session.delete(bmc)
    session.flush()
    per_host.remember(session, _KNOWN, host.id, None)
    return True
