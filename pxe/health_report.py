"""What an installed host reports of its health after registering: its software RAID arrays.

The first-boot agent reads each md array from sysfs in dom0 (level, members, the kernel's
array state, the sync action and its progress) and sends them with the host's report token.
The body is input from the network all the same: each field is checked here and a bad one is
named in the 400 (``raid[0].members``). The server, not the agent, decides what the readings
mean (:func:`array_state`), so every host's mirror is judged by the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pxe.store.errors import InvalidInputError

MAX_ARRAYS = 64
MAX_MEMBERS = 1024
# md device names as /sys/block shows them: md0, md127, md_d0, or a named array's md_<name>.
_NAME = re.compile(r"^md[A-Za-z0-9_.-]{1,32}$")
_LEVEL = re.compile(r"^[a-z0-9]{1,16}$")
# The kernel's words (Documentation/admin-guide/md.rst): md/array_state and md/sync_action.
ARRAY_STATES = ("clear", "inactive", "suspended", "readonly", "read-auto", "clean", "active",
                "write-pending", "active-idle", "broken")  # fmt: skip
SYNC_ACTIONS = ("idle", "resync", "recover", "check", "repair", "reshape", "frozen")
# Sync actions that rebuild redundancy (a check only reads, a frozen one waits).
_REBUILDING = frozenset({"resync", "recover", "repair", "reshape"})


class HealthReportError(InvalidInputError):
    """One field of the report is missing or wrong (a 400 naming the field)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"field {field!r} {problem}")


class RaidState(StrEnum):
    """One array's state as the server judges it, and a host's: its worst array's."""

    NONE = "none"  # a host without software RAID
    CLEAN = "clean"
    RESYNCING = "resyncing"
    DEGRADED = "degraded"
    FAILED = "failed"


# Worst last: a host's state is its worst array's.
_SEVERITY = (RaidState.NONE, RaidState.CLEAN, RaidState.RESYNCING, RaidState.DEGRADED,
             RaidState.FAILED)  # fmt: skip
# States an operator must act on: their events are warnings.
WARNING_STATES = frozenset({RaidState.DEGRADED, RaidState.FAILED})


@dataclass(frozen=True)
class RaidArray:
    name: str
    level: str
    members: int  # members present and in sync
    expected: int  # members the array is made of (md/raid_disks)
    array_state: str
    sync_action: str | None  # None for levels without one (raid0, linear)
    progress: float | None  # percent of the running sync action, None when idle

    @property
    def state(self) -> RaidState:
        return array_state(self)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}

    def describe(self) -> str:
        """One line for events and the command line: ``md127 raid1 degraded, 1 of 2``."""
        text = f"{self.name} {self.level} {self.state.value}, {self.members} of {self.expected}"
        if self.progress is not None and self.state is RaidState.RESYNCING:
            text += f", {self.sync_action} {self.progress:.1f}%"
        return text


@dataclass(frozen=True)
class HealthReport:
    raid: tuple[RaidArray, ...]

    @property
    def raid_state(self) -> RaidState:
        return worst(array.state for array in self.raid)


def array_state(array: RaidArray) -> RaidState:
    """Failed when the kernel stopped it or no member is left; resyncing while a sync rebuilds
    it (a degraded array recovering onto a new disk included); degraded with members missing;
    clean otherwise."""
    if array.array_state in ("clear", "inactive", "broken") or array.members == 0:
        return RaidState.FAILED
    if array.sync_action in _REBUILDING:
        return RaidState.RESYNCING
    if array.members < array.expected:
        return RaidState.DEGRADED
    return RaidState.CLEAN


def worst(states: Any) -> RaidState:
    return max(states, key=_SEVERITY.index, default=RaidState.NONE)


def _int(item: Mapping[str, Any], where: str, key: str, high: int) -> int:
    value = item.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise HealthReportError(
            f"{where}.{key}", f"must be an integer from 0 to {high}, not {value!r}"
        )
    return value


def _word(item: Mapping[str, Any], where: str, key: str, allowed: Sequence[str]) -> str:
    value = item.get(key)
    if value not in allowed:
        raise HealthReportError(
            f"{where}.{key}", f"must be one of {', '.join(allowed)}, not {value!r}"
        )
    return str(value)


def _array(item: Any, where: str) -> RaidArray:
    if not isinstance(item, Mapping):
        raise HealthReportError(where, "must be an object")
    name, level = item.get("name"), item.get("level")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise HealthReportError(f"{where}.name", f"is not an md device name (md0, md127): {name!r}")
    if not isinstance(level, str) or not _LEVEL.fullmatch(level):
        raise HealthReportError(f"{where}.level", f"is not a RAID level (raid1, raid5): {level!r}")
    expected = _int(item, where, "expected", MAX_MEMBERS)
    members = _int(item, where, "members", expected)
    sync_action = None
    if item.get("sync_action") is not None:
        sync_action = _word(item, where, "sync_action", SYNC_ACTIONS)
    progress = item.get("progress")
    if progress is not None and (
        isinstance(progress, bool) or not isinstance(progress, int | float)
        or not 0 <= progress <= 100
    ):  # fmt: skip
        raise HealthReportError(
            f"{where}.progress", f"must be a number from 0 to 100, not {progress!r}"
        )
    return RaidArray(
        name=name,
        level=level,
        members=members,
        expected=expected,
        array_state=_word(item, where, "array_state", ARRAY_STATES),
        sync_action=sync_action,
        progress=None if progress is None else round(float(progress), 1),
    )


def parse_health(body: Any) -> HealthReport:
    """Validate a health report; raises :class:`HealthReportError` at the first bad field."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("the health report must be a JSON object")
    raid = body.get("raid")
    if not isinstance(raid, list):
        raise HealthReportError("raid", "must be a list of md arrays (empty without software RAID)")
    if len(raid) > MAX_ARRAYS:
        raise HealthReportError("raid", f"lists {len(raid)} arrays; at most {MAX_ARRAYS}")
    arrays = tuple(_array(item, f"raid[{i}]") for i, item in enumerate(raid))
    names = [array.name for array in arrays]
    if len(set(names)) != len(names):
        raise HealthReportError("raid", f"names an array twice: {', '.join(names)}")
    return HealthReport(arrays)
