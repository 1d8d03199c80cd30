"""Address leases for the optional full-DHCP mode (isolated lab networks without a DHCP server).

Leases live in memory: a lab network restarted with the server simply re-leases, and a rack
with a real DHCP server uses ProxyDHCP mode, which never hands out an address.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

# How long an offered address stays reserved for the client's REQUEST.
OFFER_HOLD_SECONDS = 60


class InvalidRangeError(ValueError):
    """A DHCP range that cannot work (reversed, across subnets, or overlapping the server)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"invalid full-DHCP range: {why}")


@dataclass(frozen=True)
class DhcpRange:
    start: IPv4Address
    end: IPv4Address
    netmask: IPv4Address
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    lease_seconds: int = 3600

    def __post_init__(self) -> None:
        if int(self.end) < int(self.start):
            raise InvalidRangeError(f"{self.start} comes after {self.end}")
        if self.end not in self.network:
            raise InvalidRangeError(f"{self.start} and {self.end} are not in one /"
                                    f"{self.network.prefixlen} subnet")
        if self.lease_seconds < 60:
            raise InvalidRangeError(f"a lease of {self.lease_seconds} s is too short")

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.start}/{self.netmask}", strict=False)

    def __contains__(self, address: object) -> bool:
        return (isinstance(address, IPv4Address)
                and int(self.start) <= int(address) <= int(self.end))


class LeasePool:
    """Who holds which address until when; one writer (the DHCP service thread)."""

    def __init__(self, dhcp_range: DhcpRange, *, server_ip: IPv4Address | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``server_ip`` ``None``: the server's address on the range's network is not known
        yet (it is the receiving interface's); requests are then checked one by one."""
        if server_ip is not None and server_ip in dhcp_range:
            raise InvalidRangeError(f"the range contains the server's own address {server_ip}")
        self.range = dhcp_range
        self._clock = clock
        self._by_mac: dict[str, tuple[IPv4Address, float]] = {}

    def offer(self, mac: str, requested: IPv4Address | None) -> IPv4Address | None:
        """The client's current address, else the one it asks for if free, else the first free."""
        now = self._clock()
        current = self._by_mac.get(mac)
        if current and current[1] > now:
            return current[0]
        taken = self._taken(now, except_mac=mac)
        first = [requested] if requested is not None and requested in self.range else []
        every = (IPv4Address(n) for n in range(int(self.range.start), int(self.range.end) + 1))
        for address in itertools.chain(first, every):
            if address not in taken:
                self._by_mac[mac] = (address, now + OFFER_HOLD_SECONDS)
                return address
        return None

    def bind(self, mac: str, address: IPv4Address) -> bool:
        """Confirm a REQUEST: true if ``address`` is now leased to ``mac``."""
        now = self._clock()
        if address not in self.range or address in self._taken(now, except_mac=mac):
            return False
        self._by_mac[mac] = (address, now + self.range.lease_seconds)
        return True

    def release(self, mac: str) -> None:
        self._by_mac.pop(mac, None)

    def _taken(self, now: float, except_mac: str) -> set[IPv4Address]:
        return {address for mac, (address, until) in self._by_mac.items()
                if until > now and mac != except_mac}
