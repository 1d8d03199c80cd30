"""Redfish through sushy.

HTTP basic authentication, not a Redfish session: each call is a new client, and a session
it opened would stay on the BMC (which keeps only a few) until it expired. Timeouts are
sushy's own, connect and read, so no request waits longer than the service allows. sushy
retries a GET the BMC answered with a server error, here once after half a second (a read
may be repeated); a request that could not connect or timed out is not sent again, since a
power action must not be sent twice because the first reply was slow.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sushy
from sushy import auth as sushy_auth
from sushy import exceptions as sushy_errors

from common import wire
from pxe.bmc.driver import (
    BmcAuthError,
    BmcCommandError,
    BmcConfig,
    BmcError,
    BmcUnreachableError,
    PowerAction,
    PowerState,
)

_STATES = {
    sushy.PowerState.ON: PowerState.ON,
    sushy.PowerState.OFF: PowerState.OFF,
    sushy.PowerState.POWERING_ON: PowerState.POWERING_ON,
    sushy.PowerState.POWERING_OFF: PowerState.POWERING_OFF,
    sushy.PowerState.PAUSED: PowerState.ON,
}


def base_url(config: BmcConfig) -> str:
    """``https://address:port``; an address given as a URL keeps its scheme (and port)."""
    address = config.address
    if "://" not in address:
        return f"https://{wire.authority(address, config.port)}"
    parts = urlsplit(address)
    if parts.port is None:
        return f"{parts.scheme}://{parts.netloc}:{config.port}"
    return f"{parts.scheme}://{parts.netloc}"


def _translate(exc: Exception) -> BmcError:
    if isinstance(exc, sushy_errors.AccessError):
        return BmcAuthError(f"HTTP {exc.status_code}")
    if isinstance(exc, sushy_errors.ConnectionError):
        return BmcUnreachableError(_reason(exc))
    if isinstance(exc, sushy_errors.HTTPError):
        return BmcCommandError(f"HTTP {exc.status_code}: {exc.detail or exc.message}")
    return BmcCommandError(str(exc))


def _reason(exc: sushy_errors.ConnectionError) -> str:
    """The innermost cause in a few words (requests nests them deep)."""
    cause: BaseException | None = exc
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    text = str(cause or exc)
    if "timed out" in text.lower():
        return "no reply within the timeout"
    if "refused" in text.lower():
        return "connection refused"
    return text[:200]


class RedfishDriver:
    def __init__(self, config: BmcConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout

    def _system(self) -> Any:
        try:
            client = sushy.Sushy(
                base_url(self.config),
                auth=sushy_auth.BasicAuth(self.config.username, self.config.password),
                verify=self.config.verify_tls,
                server_side_retries=1,
                server_side_retries_delay=0.5,
                read_timeout=self.timeout,
                connect_timeout=min(2.0, self.timeout),
            )
            return client.get_system(self.config.system_path or None)
        except sushy_errors.SushyError as exc:
            raise _translate(exc) from None

    def power_state(self) -> PowerState:
        system = self._system()
        return _STATES.get(system.power_state, PowerState.OFF)

    def power(self, action: PowerAction) -> None:
        system = self._system()
        try:
            if action is PowerAction.ON:
                system.reset_system(sushy.ResetType.ON)
            elif action is PowerAction.OFF:
                system.reset_system(sushy.ResetType.FORCE_OFF)
            elif system.power_state == sushy.PowerState.OFF:
                system.reset_system(sushy.ResetType.ON)
            else:
                system.reset_system(sushy.ResetType.FORCE_RESTART)
        except sushy_errors.SushyError as exc:
            raise _translate(exc) from None

    def boot_network_once(self) -> None:
        system = self._system()
        try:
            system.set_system_boot_options(
                target=sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE
            )
        except sushy_errors.SushyError as exc:
            raise _translate(exc) from None
