"""When to start a supervised child process again after it died.

A child that dies is replaced at once; one that keeps dying young (of its start-up, not of its
work) is replaced less and less often, so a broken installation logs a line every half minute
instead of spinning. ``serve``'s HTTP workers and TFTP pumps follow this one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

# A child that lived less than this died of its start-up, not of its work: back off.
YOUNG_S = 10.0
MAX_BACKOFF_S = 30.0


@dataclass
class Restarts:
    """The start times of one supervised place (a worker's slot), on the monotonic clock."""

    started: float = 0.0
    young_deaths: int = 0
    next_start: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_start

    def began(self, now: float) -> None:
        """A child started at ``now``: its age at death is counted from here."""
        self.started = now

    def could_not_start(self, now: float) -> float:
        """Starting failed at ``now`` (no child to die young): the longest delay; returns it."""
        self.next_start = now + MAX_BACKOFF_S
        return MAX_BACKOFF_S

    def died(self, now: float) -> tuple[float, float]:
        """Schedule the next start after a death at ``now``: how long the child lived, and the
        delay before the next one."""
        lived = now - self.started
        self.young_deaths = self.young_deaths + 1 if lived < YOUNG_S else 0
        delay = min(MAX_BACKOFF_S, 2.0 ** self.young_deaths - 1)
        self.next_start = now + delay
        return lived, delay
