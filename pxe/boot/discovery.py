"""Who may be written into the inventory by asking to boot: unknown machines are unauthenticated.

Three limits, checked before anything is written for a machine no host has (a new host) or for
a new MAC of a known one:

* ``discovery`` off: an unknown machine is told it is not allowed (:attr:`BootAction.DENY`) and
  nothing is written. Hosts the operator added (by MAC, UUID or serial) still boot.
* ``max_discovered``: once that many hosts are discovered (no profile yet), a new one is not
  recorded; it waits and asks again.
* ``discovery_rate``: new hosts and MACs a minute from one source address, a token bucket per
  address held in this process (so per HTTP worker and for TFTP apart; a restart refills
  them). Past it, the machine waits and asks again.

A refusal is counted (the ``on_refused`` callback; HTTP's goes to ``/metrics``) and logged at
most once a minute per reason, with how many there were, so a flood cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pxe.boot.plan import BootAction, BootPlan
from pxe.config import Settings

log = logging.getLogger(__name__)

OFF = "off"
INVENTORY_FULL = "inventory-full"
RATE_LIMITED = "rate-limited"
REASONS = (OFF, INVENTORY_FULL, RATE_LIMITED)
LOG_EVERY_SECONDS = 60.0
# Buckets kept before the full ones (addresses quiet for a minute) are dropped.
_MAX_BUCKETS = 4096


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class _OncePerMinute:
    """The log line of a refusal reason, at most once per :data:`LOG_EVERY_SECONDS`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def __call__(self, reason: str, detail: str) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < LOG_EVERY_SECONDS:
                self._quiet[reason] = self._quiet.get(reason, 0) + 1
                return
            self._last[reason] = now
            quiet = self._quiet.pop(reason, 0)
        more = f" ({quiet} more refused since the last such line)" if quiet else ""
        log.warning("discovery refused (%s): %s%s", reason, detail, more)


# One per process: the log is the process's, whichever gate refused.
_log_refusal = _OncePerMinute(time.monotonic)


class DiscoveryGate:
    """The discovery limits of one process; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        on_refused: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._on_refused = on_refused
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def before_write(self, mac: str, remote_addr: str | None, *, new_host: bool) -> BootPlan | None:
        """The refusal of a discovery write (a new host when ``new_host``, else a new MAC of
        a known host) by ``remote_addr``, or None when it may be written. Takes one token of
        the address's bucket when it may."""
        if new_host and not self.settings.discovery:
            return self.refuse(OFF, mac, remote_addr)
        if self.settings.discovery_rate > 0 and not self._take(remote_addr or ""):
            return self.refuse(RATE_LIMITED, mac, remote_addr)
        return None

    def refuse(self, reason: str, mac: str, remote_addr: str | None) -> BootPlan:
        """The plan refusing ``mac``'s discovery for ``reason``, counted and logged."""
        settings = self.settings
        source = remote_addr or "an unknown address"
        if reason == OFF:
            plan = BootPlan(
                BootAction.DENY,
                retry_seconds=settings.retry_seconds,
                reason=f"machine {mac} is not in the inventory and discovery is off: "
                "it is not allowed to boot from this server",
            )
        elif reason == INVENTORY_FULL:
            plan = BootPlan(
                BootAction.WAIT,
                retry_seconds=settings.retry_seconds,
                reason=f"the inventory holds max_discovered ({settings.max_discovered}) "
                f"discovered hosts: machine {mac} is not recorded",
            )
        else:
            plan = BootPlan(
                BootAction.WAIT,
                retry_seconds=settings.retry_seconds,
                reason=f"too many new machines from {source} (discovery_rate "
                f"{settings.discovery_rate} a minute): machine {mac} is not recorded yet",
            )
        if self._on_refused is not None:
            self._on_refused(reason)
        _log_refusal(reason, f"{mac} from {source}: {plan.reason}")
        return plan

    def _take(self, address: str) -> bool:
        rate = self.settings.discovery_rate
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(address)
            if bucket is None:
                if len(self._buckets) >= _MAX_BUCKETS:
                    self._forget_full(now, rate)
                bucket = self._buckets[address] = _Bucket(float(rate), now)
            bucket.tokens = min(float(rate), bucket.tokens + (now - bucket.stamp) * rate / 60)
            bucket.stamp = now
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def _forget_full(self, now: float, rate: int) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        for address, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * rate / 60 >= rate:
                del self._buckets[address]
