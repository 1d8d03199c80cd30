"""What every BMC driver offers, and the errors a BMC call ends with.

The drivers speak to one BMC each; they know nothing of hosts, the inventory or time limits
beyond their library's own timeouts. Their errors carry what failed in the BMC's words; the
service turns them into one sentence that also names the host and the BMC.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pxe.store.errors import StoreError


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    POWERING_ON = "powering-on"
    POWERING_OFF = "powering-off"


class PowerAction(StrEnum):
    ON = "on"
    OFF = "off"
    # Off and on again: a hard reset when the host is on, power on when it is off.
    CYCLE = "cycle"


@dataclass(frozen=True)
class BmcConfig:
    """How to reach one BMC, password in clear: only ever held in memory for a call."""

    driver: str
    address: str
    port: int
    username: str
    password: str
    system_path: str = ""  # Redfish: /redfish/v1/Systems/<id>; empty: the BMC's only system
    verify_tls: bool = True

    def __repr__(self) -> str:  # never the password, whatever prints this
        return f"BmcConfig({self.label()})"

    def label(self) -> str:
        """``ipmi admin@10.0.0.5:623``: which BMC, for messages and events."""
        return f"{self.driver} {self.username}@{self.address}:{self.port}"


class BmcError(StoreError):
    """A BMC call that failed; a 502 to API clients, since the BMC is the upstream."""

    status = 502
    what = "failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BmcUnreachableError(BmcError):
    """The BMC did not answer (closed port, no route, no reply within the timeout)."""

    what = "did not answer"


class BmcAuthError(BmcError):
    """The BMC refused the user name or password (or its privilege)."""

    what = "refused the credentials"


class BmcCommandError(BmcError):
    """The BMC answered but refused or failed the command."""

    what = "returned an error"


class Driver(Protocol):
    def power_state(self) -> PowerState: ...

    def power(self, action: PowerAction) -> None:
        """Ask for ``action``; returns once the BMC acknowledged it (not once it is done)."""

    def boot_network_once(self) -> None:
        """Make the next boot, and only the next, a network (PXE) boot."""
