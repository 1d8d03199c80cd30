"""The BMC of the machine being installed, as the machine itself sees it (in-band IPMI).

An operator racking a host knows its MAC from the switch, but rarely the address its BMC took;
the installer can ask the BMC through the system interface (KCS/SMIC/BT, the ``ipmi_si``
driver, which the installer image's init loads) and send the answer to the server, which offers
it when the operator assigns the BMC. ``ipmitool lan print`` is the reader: it is what an
operator would type at this console. The drivers are not loaded from here, so running the
installer on some other system never probes that system's buses.

Nothing here may stop an install: a machine without a BMC, a driver that does not bind or an
answer that cannot be read is "no BMC seen", logged, and the install goes on.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from common import runner
from common.errors import CommandError

log = logging.getLogger(__name__)

DEVICE = Path("/dev/ipmi0")  # ipmitool's default system interface
LAN_CHANNEL = 1  # the first LAN channel: where nearly every BMC puts its dedicated port
READ_TIMEOUT_S = 20


@dataclass(frozen=True)
class BmcSighting:
    """What the BMC says of its LAN port: an address the server can reach it on."""

    address: str
    source: str  # "static", "dhcp" or what the BMC calls it
    mac: str | None = None
    channel: int = LAN_CHANNEL

    def describe(self) -> str:
        mac = f", MAC {self.mac}" if self.mac else ""
        return f"IPMI LAN {self.address} ({self.source}{mac}, channel {self.channel})"


def parse_lan_print(text: str, channel: int = LAN_CHANNEL) -> BmcSighting | None:
    """``ipmitool lan print`` as a sighting; None when the port has no usable address (a BMC
    not yet configured answers 0.0.0.0)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    try:
        address = ipaddress.ip_address(fields.get("IP Address", ""))
    except ValueError:
        return None
    if address.is_unspecified:
        return None
    source = fields.get("IP Address Source", "").lower()
    source = {"static address": "static", "dhcp address": "dhcp"}.get(source, source or "unknown")
    mac = fields.get("MAC Address", "").lower() or None
    if mac == "00:00:00:00:00:00":
        mac = None
    return BmcSighting(str(address), source, mac, channel)


def probe(device: Path = DEVICE) -> BmcSighting | None:
    """This machine's BMC LAN address, or None when there is no BMC or it says nothing usable."""
    try:
        if not device.exists():
            log.info("no BMC: no %s", device)
            return None
        result = runner.run(
            ["ipmitool", "-I", "open", "lan", "print", str(LAN_CHANNEL)],
            check=False,
            timeout=READ_TIMEOUT_S,
        )
    except CommandError as exc:  # a tool missing from this image, or a BMC that hangs
        log.warning("BMC not read: %s", exc)
        return None
    if result.returncode != 0:
        log.warning("BMC present but ipmitool lan print failed: %s", result.stderr.strip())
        return None
    seen = parse_lan_print(result.stdout)
    log.info("BMC: %s", seen.describe() if seen else "no LAN address configured")
    return seen
