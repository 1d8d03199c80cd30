"""IPMI 2.0 over LAN (RMCP+) through pyghmi.

pyghmi shares one logged-in session between every caller naming the same BMC and user; a
call here logs in, does its commands and logs out, holding a lock per BMC so that no other
thread of this process logs that session out under it. BMCs have few session slots (often
four): a session left open by every server process would use them up.

pyghmi retransmits unanswered packets itself, with a growing delay (IPMI over UDP allows it:
requests carry sequence numbers); a BMC that never answers fails its login after about five
seconds, which the service's own deadline bounds in any case.

User name and password go to pyghmi as bytes: pyghmi 1.6 files a session being opened under
the credentials as given but removes it under their bytes, so with text a login after a
logout found the old, logged-out session and failed.

pyghmi's one I/O thread waits on its sockets with select(), which refuses a descriptor numbered
1024 or more. A server past a thousand open files (connections, transfers, the database) then
opened a socket select() could not watch, the thread died, and every IPMI call after it went
unanswered until a restart. pyghmi lets its caller replace the module it waits with (as eventlet
does); ours waits by poll(), which has no such limit.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from pyghmi import exceptions as pyghmi_errors
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as ipmi_session

from pxe.bmc.driver import (
    BmcAuthError,
    BmcCommandError,
    BmcConfig,
    BmcError,
    BmcUnreachableError,
    PowerAction,
    PowerState,
)

T = TypeVar("T")


class _PollWait:
    """What pyghmi's I/O thread calls as ``select.select``: the readable sockets of ``readers``
    within ``timeout`` seconds, by poll(), whatever their descriptor numbers."""

    @staticmethod
    def select(
        readers: list[socket.socket], writers: Any, errors: Any, timeout: float | None = None
    ) -> tuple[list[socket.socket], list[Any], list[Any]]:
        poller = select.poll()
        for sock in readers:
            poller.register(sock, select.POLLIN)
        wait_ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        ready = {fd for fd, _ in poller.poll(wait_ms)}
        return [sock for sock in readers if sock.fileno() in ready], [], []


ipmi_session.select = _PollWait

# Logins tried when pyghmi loses a failed login's reason (see IpmiDriver._open).
_LOGIN_TRIES = 5
# What pyghmi says when the BMC refused who we are (its messages, lower-cased).
_AUTH_WORDS = ("password", "unauthorized", "privilege", "rakp", "authenticat", "invalid role")
# set_power's words: "boot" is on when off, a hard reset when on.
_POWER = {PowerAction.ON: "on", PowerAction.OFF: "off", PowerAction.CYCLE: "boot"}

_locks: dict[tuple[str, int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(config: BmcConfig) -> threading.Lock:
    key = (config.address, config.port, config.username)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _translate(exc: Exception) -> BmcError:
    if isinstance(exc, socket.gaierror):
        return BmcUnreachableError(f"its address does not resolve ({exc.strerror})")
    if isinstance(exc, OSError):
        return BmcUnreachableError(f"the network refused the connection ({exc.strerror or exc})")
    message = str(exc.args[0]) if exc.args and exc.args[0] else ""
    lowered = message.lower()
    if not message or "timeout" in lowered or "no longer connected" in lowered:
        return BmcUnreachableError("no IPMI reply")
    if any(word in lowered for word in _AUTH_WORDS):
        return BmcAuthError(message)
    return BmcCommandError(message)


class IpmiDriver:
    def __init__(self, config: BmcConfig) -> None:
        self.config = config

    @contextmanager
    def _session(self) -> Iterator[Any]:
        with _lock_for(self.config):
            cmd = self._open()
            try:
                yield cmd
            finally:
                # The session is dropped on our side even if the BMC missed the logout.
                with suppress(pyghmi_errors.PyghmiException, OSError):
                    cmd.ipmi_session.logout()

    def _open(self) -> Any:
        """A logged-in pyghmi command object. pyghmi 1.6 has a race in a failed login: its I/O
        thread marks the session broken before it stores the reason, and the constructor can
        read the flag first and raise AttributeError ('errormsg'). A login has no side effect on
        the host, so that one case is tried again, a little later each time: on a loaded
        machine two tries in a row lost the race (seen in a full CI run)."""
        for attempt in range(_LOGIN_TRIES):
            if attempt:
                time.sleep(0.1 * attempt)
            try:
                return ipmi_command.Command(
                    bmc=self.config.address,
                    userid=self.config.username.encode(),
                    password=self.config.password.encode(),
                    port=self.config.port,
                )
            except (pyghmi_errors.PyghmiException, OSError) as exc:
                raise _translate(exc) from None
            except AttributeError:
                continue
        raise BmcCommandError("the IPMI session failed and the library lost the reason")

    def _run(self, work: Callable[[Any], T]) -> T:
        with self._session() as cmd:
            try:
                return work(cmd)
            except (pyghmi_errors.PyghmiException, OSError) as exc:
                raise _translate(exc) from None

    def power_state(self) -> PowerState:
        reply = self._run(lambda cmd: cmd.get_power())
        return PowerState.ON if reply.get("powerstate") == "on" else PowerState.OFF

    def power(self, action: PowerAction) -> None:
        self._run(lambda cmd: _checked(cmd.set_power(_POWER[action], wait=False)))

    def boot_network_once(self) -> None:
        # persist=False: the BMC clears the override after the next boot (IPMI boot flags).
        self._run(lambda cmd: _checked(cmd.set_bootdev("network", persist=False)))


def _checked(reply: Any) -> Any:
    """pyghmi returns some refusals as ``{"error": ...}`` instead of raising them."""
    if isinstance(reply, dict) and reply.get("error"):
        raise BmcCommandError(str(reply["error"]))
    return reply
