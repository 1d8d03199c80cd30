"""What a host's first-boot agent reports when it registers, checked field by field.

The agent runs on a machine we just installed, with a token we gave it, but its body is still
input from the network: every field the pool checks and DNS rely on is validated here, and a bad
one is named in the 400 so the agent's log says what to fix. Fields the agent adds beyond these
are kept as facts, so a newer agent does not need a newer server.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common import registration_key
from pxe.pools import JoinFacts
from pxe.store.errors import InvalidInputError
from pxe.store.hosts import check_hostname
from pxe.store.macs import normalise_mac
from pxe.store.names import check_name

REQUIRED_TEXT = ("cpu_vendor", "xen_version", "dom0_release", "network_backend")
MAX_FACTS_BYTES = 256 * 1024


class ReportError(InvalidInputError):
    """One field of the report is missing or wrong (a 400 naming the field)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"field {field!r} {problem}")


@dataclass(frozen=True)
class HostReport:
    mac: str
    join: JoinFacts
    hostname: str | None
    # The pool our answer-file extension named, if the agent passed it on.
    pool: str | None
    # Everything reported but the key, normalised; stored as the host's facts.
    facts: dict[str, Any]
    # The registration key the installer left on the host (common.registration_key): a
    # credential, so never among the facts, never shown.
    key: str | None = dataclasses.field(default=None, repr=False, compare=False)


def _text(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None or value == "":
        raise ReportError(field, "is required")
    if not isinstance(value, str):
        raise ReportError(field, f"must be a string, not {type(value).__name__}")
    return value.strip()


def _optional_int(body: Mapping[str, Any], field: str, low: int, high: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # 2.0 is an integer in JSON too
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ReportError(field, f"must be an integer from {low} to {high}, not {value!r}")
    return value


def _optional_list(body: Mapping[str, Any], field: str) -> None:
    if body.get(field) is not None and not isinstance(body[field], list):
        raise ReportError(field, "must be a list")


def _key(body: Mapping[str, Any]) -> str | None:
    """The registration key; a bad one is named, never shown."""
    name = registration_key.FIELD
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ReportError(name, f"must be a string, not {type(value).__name__}")
    if len(value) > registration_key.MAX_KEY_CHARS:
        raise ReportError(name, f"must be at most {registration_key.MAX_KEY_CHARS} characters")
    return value


def parse_report(body: Any) -> HostReport:
    """Validate a registration body; raises :class:`ReportError` at the first bad field."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("the registration body must be a JSON object")
    if len(json.dumps(body, default=str)) > MAX_FACTS_BYTES:
        raise InvalidInputError(f"the registration body is over {MAX_FACTS_BYTES} bytes")
    try:
        mac = normalise_mac(_text(body, "mac"))
    except InvalidInputError as exc:
        raise ReportError("mac", f"is not a MAC address: {body.get('mac')!r}") from exc
    texts = {field: _text(body, field) for field in REQUIRED_TEXT}
    address = _text(body, "management_ip")
    try:
        ip = ipaddress.ip_interface(address).ip
    except ValueError as exc:
        raise ReportError("management_ip", f"is not an IP address: {address!r}") from exc
    vlan = _optional_int(body, "management_vlan", 0, 4094)
    _optional_int(body, "cores", 1, 1 << 20)
    _optional_int(body, "memory", 0, 1 << 50)
    for field in ("cpu_flags", "nics", "disks"):
        _optional_list(body, field)
    hostname = None
    if body.get("hostname"):
        try:
            hostname = check_hostname(body["hostname"])
        except InvalidInputError as exc:
            raise ReportError("hostname", f"is not a host name: {body['hostname']!r}") from exc
    pool = None
    if body.get("pool"):
        try:
            pool = check_name("pool", body["pool"])
        except InvalidInputError as exc:
            raise ReportError("pool", f"is not a pool name: {body['pool']!r}") from exc
    key = _key(body)
    facts = {
        **{name: value for name, value in body.items() if name != registration_key.FIELD},
        **texts,
        "mac": mac,
        "management_ip": str(ip),
        "management_vlan": vlan,
        "hostname": hostname,
    }
    join = JoinFacts(
        xen_version=texts["xen_version"],
        dom0_release=texts["dom0_release"],
        cpu_vendor=texts["cpu_vendor"],
        network_backend=texts["network_backend"],
        management_ip=str(ip),
        management_vlan=vlan or 0,
    )
    return HostReport(mac=mac, join=join, hostname=hostname, pool=pool, facts=facts, key=key)
