"""Where the CPU went while a bench measured something: the machine's, and each server's.

A ratio of wall times says how much slower we are, not why. On a 2-core machine every process
of both sides and the load's clients share the same CPU, so the CPU each side spent is the
figure that says what a change can still win: read from ``/proc`` before and after the block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, now."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid] + [p for child in children for p in tree(int(child))]


def cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root``'s process tree, the children it reaped included
    (not those of a parent that ignores SIGCHLD, as tftpd-hpa does: the kernel keeps no total
    for them)."""
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def _machine() -> tuple[int, int]:
    """Busy and total jiffies of every CPU since boot (/proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


@dataclass(frozen=True)
class Cpu:
    """The CPU of one block: the machine's busy share and busy seconds (every process and the
    kernel's network work), and the CPU seconds of each named process tree."""

    busy: float
    machine_seconds: float
    seconds: dict[str, float]

    def __str__(self) -> str:
        used = ", ".join(f"{name} {value:.1f}" for name, value in self.seconds.items())
        return f"machine {self.busy:.0%} busy; CPU s: {used}"


@contextmanager
def cpu_use(roots: dict[str, int]) -> Iterator[dict[str, Cpu]]:
    """Measure :class:`Cpu` over the block for the trees of ``roots`` (name: pid); the result
    is in the yielded dict's ``cpu``."""
    out: dict[str, Cpu] = {}
    machine = _machine()
    before = {name: cpu_seconds(pid) for name, pid in roots.items()}
    yield out
    busy, total = (b - a for a, b in zip(machine, _machine(), strict=True))
    used = {name: cpu_seconds(pid) - before[name] for name, pid in roots.items()}
    out["cpu"] = Cpu(busy / total if total else 0.0, busy / TICKS, used)
