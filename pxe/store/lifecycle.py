"""A host's life from first PXE request to pool member, and which moves are allowed.

Every state change goes through :func:`transition`, so an installer replaying build-done or an
admin reinstalling a host mid-install meets the same rules, and each move leaves an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pxe.store.errors import ConflictError, InvalidInputError


class State(StrEnum):
    DISCOVERED = "discovered"  # seen on the network, no profile yet
    READY = "ready"  # has a profile; boots the installer
    INSTALLING = "installing"  # the installer reported progress
    INSTALLED = "installed"  # build-done received; boots the local disk
    REGISTERED = "registered"  # its first boot called home (pool admission pending or refused)
    IN_POOL = "in-pool"
    FAILED = "failed"  # the installer reported a failure; waits for an operator


ALLOWED: dict[State, frozenset[State]] = {
    State.DISCOVERED: frozenset({State.READY}),
    State.READY: frozenset(
        {State.READY, State.INSTALLING, State.INSTALLED, State.FAILED, State.DISCOVERED}
    ),
    State.INSTALLING: frozenset({State.INSTALLING, State.INSTALLED, State.FAILED, State.READY}),
    State.INSTALLED: frozenset({State.REGISTERED, State.IN_POOL, State.READY}),
    State.REGISTERED: frozenset({State.REGISTERED, State.IN_POOL, State.READY}),
    State.IN_POOL: frozenset({State.IN_POOL, State.REGISTERED, State.READY}),
    State.FAILED: frozenset({State.READY}),
}

# States whose host should boot the installer, and those that boot their own disk.
INSTALLER_STATES = frozenset({State.READY, State.INSTALLING})
LOCAL_BOOT_STATES = frozenset({State.INSTALLED, State.REGISTERED, State.IN_POOL})


class TransitionError(ConflictError):
    def __init__(self, current: State, target: State, who: str = "host") -> None:
        allowed = ", ".join(sorted(ALLOWED[current])) or "nothing"
        super().__init__(
            f"{who} is {current.value} and cannot become {target.value} (from {current.value}: "
            f"{allowed})"
        )
        self.current = current
        self.target = target


def parse_state(text: str) -> State:
    try:
        return State(text)
    except ValueError as exc:
        known = ", ".join(s.value for s in State)
        raise InvalidInputError(f"unknown state {text!r}; states are {known}") from exc


def check_transition(current: State | str, target: State | str, who: str = "host") -> State:
    """The target state when the move is allowed; TransitionError (a 409) otherwise."""
    current, target = State(current), State(target)
    if target not in ALLOWED[current]:
        raise TransitionError(current, target, who)
    return target


@dataclass(frozen=True)
class Move:
    """A state change allowed by the lifecycle: the new state, why, and the event it leaves
    (None when the host stays where it was)."""

    state: State
    reason: str
    event: str | None


def move(current: State | str, target: State, reason: str = "", who: str = "host") -> Move:
    """The move of a host from ``current`` to ``target``; TransitionError (a 409) when the
    lifecycle does not allow it."""
    check_transition(current, target, who)
    changed = State(current) != target
    return Move(target, reason, (reason or f"{current} -> {target.value}") if changed else None)
