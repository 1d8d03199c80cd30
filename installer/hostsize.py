"""The memory and CPUs of the machine being installed: they size dom0 (``dom0_mem``,
``dom0_max_vcpus``) for a fresh install, and for an upgrade whose inventory does not say."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class HostSize:
    memory_kib: int
    cpus: int

    @classmethod
    def of_this_host(cls) -> HostSize:
        memory = 0
        with MEMINFO.open() as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1])
        return cls(memory, os.cpu_count() or 1)
