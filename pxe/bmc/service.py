"""Power control as the API and the CLI ask for it: bounded in time, cached, recorded.

- Time: every BMC call runs on a small thread pool and the caller waits at most
  ``Settings.bmc_timeout`` seconds for it, whatever the library does underneath; a call past
  its deadline is told to stop before its next step (a reinstall never power-cycles a host
  after its request was answered with an error).
- Cache: a power state read is reused for ``Settings.bmc_status_cache_seconds`` (per
  process), and so is a failed read, so that a dead BMC is not asked again on every refresh.
  Any action, or a change of the BMC's settings, forgets the host's reading.
- Record: every action is an event of its host naming who asked (the API token's name, or
  ``cli:<user>``), failures included; a failed status read is an event once, not at every
  poll. A failure changes nothing else: the host keeps its state.

The BMC's password is decrypted for the call only, and is kept out of every message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from pxe.bmc import crypto
from pxe.bmc.driver import (
    BmcAuthError,
    BmcConfig,
    BmcError,
    BmcUnreachableError,
    Driver,
    PowerAction,
    PowerState,
)
from pxe.bmc.ipmi import IpmiDriver
from pxe.bmc.redfish import RedfishDriver
from pxe.config import Settings
from pxe.db.models import Bmc, Host, utcnow
from pxe.db.session import Database
from pxe.store import bmc as bmc_store
from pxe.store import hosts as host_store
from pxe.store.errors import ConflictError
from pxe.store.events import record_event
from pxe.store.lifecycle import State, check_transition
from pxe.store.views import bmc_view, host_view

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENT_OK = "power"
EVENT_FAILED = "power-failed"
EVENT_BMC = "bmc"
_HINTS = {
    BmcUnreachableError: "check its address and port, and that it is powered and on the network",
    BmcAuthError: "check the user name and password set with 'xcp-provision hosts bmc'",
}
# BMC calls waiting at once in one server process; more wait for a free thread (and their
# deadline counts the wait).
_POOL_SIZE = 32
_pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="bmc")


class NoBmcError(ConflictError):
    def __init__(self, host: Host) -> None:
        ref = host.hostname or host.id
        super().__init__(
            f"host {ref} has no BMC; set one with 'xcp-provision hosts bmc {ref} ...' or "
            f"PUT /api/v1/hosts/{ref}/bmc"
        )


@dataclass(frozen=True)
class Target:
    """One host's BMC, loaded and decrypted for one call."""

    host_id: int
    host_name: str
    config: BmcConfig
    fingerprint: tuple[Any, ...]


@dataclass(frozen=True)
class PowerReading:
    state: PowerState
    read_at: datetime
    cached: bool

    def view(self) -> dict[str, Any]:
        return {
            "power": self.state.value,
            "read_at": self.read_at.isoformat().replace("+00:00", "Z"),
            "cached": self.cached,
        }


@dataclass
class _Progress:
    """Which step a call is at, and whether its caller stopped waiting."""

    step: str
    stopped: bool = False

    def at(self, step: str) -> None:
        if self.stopped:
            raise BmcUnreachableError("the request's time ran out before this step")
        self.step = step


@dataclass
class _Entry:
    expires: float
    fingerprint: tuple[Any, ...]
    reading: PowerReading | None = None
    error: BmcError | None = None


@dataclass
class _StatusCache:
    entries: dict[int, _Entry] = field(default_factory=dict)
    reported: dict[int, str] = field(default_factory=dict)  # host id -> last failure recorded
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, target: Target) -> _Entry | None:
        with self.lock:
            entry = self.entries.get(target.host_id)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry if entry.fingerprint == target.fingerprint else None

    def put(self, target: Target, ttl: float, **result: Any) -> None:
        with self.lock:
            self.entries[target.host_id] = _Entry(
                time.monotonic() + ttl, target.fingerprint, **result
            )

    def forget(self, host_id: int) -> None:
        with self.lock:
            self.entries.pop(host_id, None)
            self.reported.pop(host_id, None)

    def first_report(self, host_id: int, message: str) -> bool:
        """True once per distinct failure of a host's status reads, until one succeeds."""
        with self.lock:
            if self.reported.get(host_id) == message:
                return False
            self.reported[host_id] = message
            return True

    def clear_report(self, host_id: int) -> None:
        with self.lock:
            self.reported.pop(host_id, None)


_cache = _StatusCache()


def forget_cached(host_id: int | None = None) -> None:
    """Drop the cached readings of one host, or of every host."""
    if host_id is None:
        with _cache.lock:
            _cache.entries.clear()
            _cache.reported.clear()
    else:
        _cache.forget(host_id)


def driver_for(config: BmcConfig, timeout: float) -> Driver:
    if config.driver == bmc_store.IPMI:
        return IpmiDriver(config)
    return RedfishDriver(config, timeout)


def _host_name(host: Host) -> str:
    return str(host.hostname or host.id)


def _target(settings: Settings, host: Host, bmc: Bmc) -> Target:
    config = BmcConfig(
        driver=bmc.driver,
        address=bmc.address,
        port=bmc.port,
        username=bmc.username,
        password=crypto.decrypt(settings.data_dir, bmc.password_encrypted),
        system_path=bmc.system_path,
        verify_tls=bmc.verify_tls,
    )
    fingerprint = (
        bmc.driver,
        bmc.address,
        bmc.port,
        bmc.username,
        bmc.password_encrypted,
        bmc.system_path,
        bmc.verify_tls,
    )
    return Target(host.id, _host_name(host), config, fingerprint)


def load_target(session: Session, settings: Settings, ref: str | int) -> Target:
    host = host_store.get_host(session, ref)
    bmc = bmc_store.get_bmc(session, host)
    if bmc is None:
        raise NoBmcError(host)
    return _target(settings, host, bmc)


def _sentence(target: Target, step: str, exc: BmcError) -> BmcError:
    """The error again, as one sentence naming the host, the BMC, the step and a way on."""
    detail = exc.detail
    if target.config.password:
        detail = detail.replace(target.config.password, "[hidden]")
    hint = next((text for kind, text in _HINTS.items() if isinstance(exc, kind)), "")
    message = (
        f"host {target.host_name}: BMC {target.config.label()} {exc.what} ({step}): {detail}"
        + (f"; {hint}" if hint else "")
    )
    return type(exc)(message)


def _call(
    settings: Settings,
    target: Target,
    first_step: str,
    work: Callable[[Driver, _Progress], T],
) -> T:
    """``work`` on the target's driver, waited for at most ``bmc_timeout`` seconds."""
    timeout = float(settings.bmc_timeout)
    progress = _Progress(first_step)
    driver = driver_for(target.config, max(1.0, timeout / 2))
    future = _pool.submit(work, driver, progress)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        progress.stopped = True
        raise _sentence(
            target,
            progress.step,
            BmcUnreachableError(
                f"no reply within {settings.bmc_timeout} s (the BMC may still carry out what "
                "it was sent)"
            ),
        ) from None
    except BmcError as exc:
        raise _sentence(target, progress.step, exc) from None


def _record(database: Database, host_id: int, kind: str, step: str, message: str) -> None:
    with database.scope(write=True) as session:
        host = session.get(Host, host_id)
        if host is not None:  # removed meanwhile: nothing to record it on
            record_event(session, host, kind, message, step=step)


def _failed(database: Database, target: Target, step: str, actor: str, exc: BmcError) -> None:
    log.warning("%s (asked by %s)", exc, actor)
    _record(database, target.host_id, EVENT_FAILED, step, f"asked by {actor}: {exc}")


def power_status(
    database: Database, settings: Settings, ref: str | int, *, fresh: bool = False
) -> PowerReading:
    """The host's power state, from the cache unless ``fresh`` or too old."""
    with database.scope(write=False) as session:
        target = load_target(session, settings, ref)
    if not fresh:
        entry = _cache.get(target)
        if entry is not None:
            if entry.error is not None:
                raise type(entry.error)(str(entry.error))  # a new one: raised in many threads
            assert entry.reading is not None
            return PowerReading(entry.reading.state, entry.reading.read_at, cached=True)
    ttl = float(settings.bmc_status_cache_seconds)
    try:
        state = _call(settings, target, "power status", lambda d, _p: d.power_state())
    except BmcError as exc:
        _cache.put(target, ttl, error=exc)
        if _cache.first_report(target.host_id, str(exc)):
            log.warning("%s", exc)
            _record(database, target.host_id, EVENT_FAILED, "status", str(exc))
        raise
    reading = PowerReading(state, utcnow(), cached=False)
    _cache.put(target, ttl, reading=reading)
    _cache.clear_report(target.host_id)
    return reading


def power_action(
    database: Database, settings: Settings, ref: str | int, action: PowerAction, actor: str
) -> dict[str, Any]:
    """Ask the host's BMC for ``action``; returned once the BMC acknowledged it."""
    with database.scope(write=False) as session:
        target = load_target(session, settings, ref)
    step = f"power {action.value}"
    try:
        _call(settings, target, step, lambda d, _p: d.power(action))
    except BmcError as exc:
        _failed(database, target, action.value, actor, exc)
        raise
    finally:
        _cache.forget(target.host_id)
    message = f"power {action.value} asked by {actor}; {target.config.label()} acknowledged it"
    _record(database, target.host_id, EVENT_OK, action.value, message)
    return {"host": target.host_name, "action": action.value, "requested_by": actor}


def reinstall_with_power(
    database: Database, settings: Settings, ref: str | int, actor: str
) -> dict[str, Any]:
    """Reinstall the host and make it happen now: its next boot from the network, once,
    then a power cycle (power on if it is off). The inventory changes only once the BMC
    acknowledged both; a BMC failure leaves the host exactly as it was."""
    with database.scope(write=False) as session:
        host = host_store.get_host(session, ref)
        if host.profile_id is None:
            raise ConflictError(f"host {_host_name(host)} has no profile; assign one to install it")
        check_transition(host.state, State.READY, f"host {_host_name(host)}")
        target = load_target(session, settings, ref)

    def work(driver: Driver, progress: _Progress) -> None:
        progress.at("next boot from the network")
        driver.boot_network_once()
        progress.at("power cycle")
        driver.power(PowerAction.CYCLE)

    try:
        _call(settings, target, "next boot from the network", work)
    except BmcError as exc:
        _failed(database, target, "reinstall", actor, exc)
        raise
    finally:
        _cache.forget(target.host_id)
    with database.scope(write=True) as session:
        host = host_store.get_host(session, target.host_id)
        host_store.reinstall_host(session, host, reason=f"reinstall with power asked by {actor}")
        record_event(
            session,
            host,
            EVENT_OK,
            f"reinstall: next boot from the network (once) and a power cycle, asked by {actor}; "
            f"{target.config.label()} acknowledged both",
            step="reinstall",
        )
        return host_view(host)


def set_bmc(
    session: Session,
    settings: Settings,
    host: Host,
    given: bmc_store.BmcSettings,
    actor: str,
) -> dict[str, Any]:
    """Set the host's BMC in ``session`` (the caller commits); its password encrypted."""
    checked = bmc_store.check(bmc_store.with_seen_address(host, given))
    token = (
        crypto.encrypt(settings.data_dir, checked.password)
        if checked.password is not None
        else None
    )
    bmc = bmc_store.set_bmc(session, host, checked, token)
    label = f"{bmc.driver} {bmc.username}@{bmc.address}:{bmc.port}"
    record_event(session, host, EVENT_BMC, f"BMC set to {label} by {actor}", step="set")
    _cache.forget(host.id)
    view = bmc_view(bmc)
    assert view is not None
    return view


def remove_bmc(session: Session, host: Host, actor: str) -> bool:
    removed = bmc_store.remove_bmc(session, host)
    if removed:
        record_event(session, host, EVENT_BMC, f"BMC removed by {actor}", step="remove")
    _cache.forget(host.id)
    return removed
