"""The BMC of each host: set (checked), read, remove. The password comes in encrypted
(pxe.bmc.crypto) and is never read back here: the store only keeps the token."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pxe.db.models import Bmc, Host, utcnow
from pxe.store.errors import InvalidInputError

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


_KNOWN = "xcp_bmcs"  # Session.info key: host id -> its Bmc or None, as read in this session
_CHUNK = 500  # host ids per IN (...) query


def _known(session: Session) -> dict[int, Bmc | None]:
    return session.info.setdefault(_KNOWN, {})


def bmc_of(host: Host) -> Bmc | None:
    """The host's BMC through the session the host was loaded in (None if detached).

    Views of many hosts ask this once per host: the first call reads the BMCs of every host
    the session holds, in a few queries, so listing 1,000 hosts is not 1,000 more queries.
    """
    session = object_session(host)
    if session is None:
        return None
    known = _known(session)
    if host.id not in known:
        ids = [host.id]
        ids += [
            obj.id
            for obj in session.identity_map.values()
            if isinstance(obj, Host) and obj.id is not None and obj.id not in known
            and obj.id != host.id
        ]  # fmt: skip
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            found = {
                b.host_id: b for b in session.scalars(select(Bmc).where(Bmc.host_id.in_(chunk)))
            }
            known.update({host_id: found.get(host_id) for host_id in chunk})
    return known[host.id]


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
    _known(session)[host.id] = bmc
    return bmc


def remove_bmc(session: Session, host: Host) -> bool:
    bmc = session.get(Bmc, host.id)
    if bmc is None:
        return False
    session.delete(bmc)
    session.flush()
    _known(session)[host.id] = None
    return True
