"""Rolling reinstalls as the inventory keeps them: which hosts, in what order, how far along.

A roll is asked for by an operator (API, CLI, dashboard) and driven by the server
(:mod:`pxe.rolls`); everything a driver needs to resume after a restart is in these rows: the
hosts still waiting, those started and when, those done or failed. Every step of a roll is a
:class:`~pxe.db.models.RollStep` row, and, for a step about one host, an event of that host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pxe.db.models import Host, Pool, Roll, RollHost, RollStep, utcnow
from pxe.store import hosts as host_store
from pxe.store.bmc import get_bmc
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.events import record_event
from pxe.store.lifecycle import State
from pxe.store.names import row_id
from pxe.store.pools import get_pool
from pxe.store.profiles import get_profile

EVENT_KIND = "roll"
MAX_PARALLEL = 1000
DEFAULT_HOST_TIMEOUT = 3600  # seconds; a started host that neither installs nor fails by then
# A started host is done once it boots its own disk again: installed, registered or in-pool.
DONE_STATES = frozenset({State.INSTALLED, State.REGISTERED, State.IN_POOL})


class RollStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"  # every host reached installed or in-pool
    FAILED = "failed"  # a host failed: stopped there, or finished with failures


class HostStatus(StrEnum):
    WAITING = "waiting"
    STARTING = "starting"  # its reinstall is being asked for (BMC call in flight)
    RUNNING = "running"  # reinstall asked; waiting for it to reach installed or in-pool
    DONE = "done"
    FAILED = "failed"


ACTIVE = (HostStatus.STARTING.value, HostStatus.RUNNING.value)


@dataclass(frozen=True)
class RollRequest:
    """What an operator asks for: a selection of hosts and how to roll through them."""

    pool: str | None = None
    profile: str | None = None
    hosts: Sequence[str] = ()
    power: bool = False
    max_parallel: int = 1
    continue_on_failure: bool = False
    host_timeout: int = DEFAULT_HOST_TIMEOUT


def _name(host: Host) -> str:
    return host.hostname or f"host-{host.id}"


def _select(session: Session, request: RollRequest) -> list[Host]:
    """The hosts matching every criterion given; named hosts in the order named."""
    pool = get_pool(session, request.pool) if request.pool else None
    profile = get_profile(session, request.profile) if request.profile else None
    if request.hosts:
        chosen: list[Host] = []
        for ref in request.hosts:
            host = host_store.get_host(session, ref)
            if host not in chosen:
                chosen.append(host)
        outside = [
            _name(h)
            for h in chosen
            if (pool is not None and h.pool_id != pool.id)
            or (profile is not None and h.profile_id != profile.id)
        ]
        if outside:
            raise ConflictError(
                f"host(s) {', '.join(outside)} are not "
                + " and ".join(
                    part
                    for part in (
                        f"in pool {pool.name}" if pool is not None else "",
                        f"of profile {profile.name}" if profile is not None else "",
                    )
                    if part
                )
            )
        return chosen
    query = select(Host).order_by(Host.id)
    if pool is not None:
        query = query.where(Host.pool_id == pool.id)
    if profile is not None:
        query = query.where(Host.profile_id == profile.id)
    return _master_last(session, list(session.scalars(query)), pool)


def _master_last(session: Session, hosts: list[Host], pool: Pool | None) -> list[Host]:
    """A pool's master is reinstalled last: its members keep a master to rejoin meanwhile."""
    if pool is None:
        return hosts
    master_id = session.scalar(select(Pool.master_host_id).where(Pool.id == pool.id))
    return sorted(hosts, key=lambda h: h.id == master_id)


def _check(session: Session, request: RollRequest, hosts: list[Host]) -> None:
    if not hosts:
        raise ConflictError("the selection holds no host; nothing to reinstall")
    problems = []
    no_profile = [_name(h) for h in hosts if h.profile_id is None]
    if no_profile:
        problems.append(f"no profile: {', '.join(no_profile)}")
    if request.power:
        no_bmc = [_name(h) for h in hosts if get_bmc(session, h) is None]
        if no_bmc:
            problems.append(f"no BMC (needed with power): {', '.join(no_bmc)}")
    busy = session.execute(
        select(RollHost.host_id, RollHost.roll_id)
        .join(Roll, Roll.id == RollHost.roll_id)
        .where(
            Roll.status == RollStatus.RUNNING.value,
            RollHost.host_id.in_([h.id for h in hosts]),
            RollHost.status.in_([HostStatus.WAITING.value, *ACTIVE]),
        )
    ).all()
    if busy:
        names = {h.id: _name(h) for h in hosts}
        rolls = ", ".join(f"{names[row.host_id]} (roll {row.roll_id})" for row in busy)
        problems.append(f"already in a running roll: {rolls}")
    if problems:
        raise ConflictError("cannot reinstall these hosts: " + "; ".join(problems))


def check_request(request: RollRequest) -> RollRequest:
    if not (request.pool or request.profile or request.hosts):
        raise InvalidInputError("name what to reinstall: a pool, a profile or a list of hosts")
    if not 1 <= request.max_parallel <= MAX_PARALLEL:
        raise InvalidInputError(f"max_parallel must be between 1 and {MAX_PARALLEL}")
    if not 60 <= request.host_timeout <= 7 * 86400:
        raise InvalidInputError("host_timeout must be between 60 and 604800 seconds")
    return request


def create_roll(session: Session, request: RollRequest, requested_by: str) -> Roll:
    """A new running roll over the selected hosts, all waiting; its driver starts them."""
    check_request(request)
    hosts = _select(session, request)
    _check(session, request, hosts)
    now = utcnow()
    roll = Roll(
        status=RollStatus.RUNNING.value,
        pool=request.pool or "",
        profile=request.profile or "",
        power=request.power,
        max_parallel=request.max_parallel,
        continue_on_failure=request.continue_on_failure,
        host_timeout=request.host_timeout,
        requested_by=requested_by,
        message="",
        created_at=now,
        updated_at=now,
    )
    roll.hosts = [
        RollHost(position=i, host_id=h.id, hostname=_name(h), status=HostStatus.WAITING.value,
                 message="")
        for i, h in enumerate(hosts)
    ]  # fmt: skip
    session.add(roll)
    session.flush()
    how = "through their BMCs" if request.power else "at their next network boot"
    add_step(
        session, roll, "created",
        f"{len(hosts)} host(s), {request.max_parallel} at a time, {how}, asked by {requested_by}"
        + ("; continues past failures" if request.continue_on_failure else ""),
    )  # fmt: skip
    return roll


def add_step(
    session: Session, roll: Roll, step: str, message: str, host: Host | None = None
) -> RollStep:
    """One step of the roll's history; a step about a host is also an event of that host."""
    row = RollStep(
        roll_id=roll.id,
        time=utcnow(),
        host_id=host.id if host is not None else None,
        step=step[:32],
        message=message,
    )
    session.add(row)
    if host is not None:
        record_event(session, host, EVENT_KIND, f"roll {roll.id}: {message}", step=step)
    return row


def get_roll(session: Session, roll_id: int | str) -> Roll:
    number = row_id(roll_id)
    roll = session.get(Roll, number) if number is not None else None
    if roll is None:
        raise NotFoundError("roll", roll_id)
    return roll


def list_rolls(session: Session, *, status: str | None = None, limit: int = 100) -> list[Roll]:
    """Newest first."""
    query = select(Roll)
    if status is not None:
        if status not in {s.value for s in RollStatus}:
            known = ", ".join(s.value for s in RollStatus)
            raise InvalidInputError(f"unknown roll status {status!r}; statuses are {known}")
        query = query.where(Roll.status == status)
    return list(session.scalars(query.order_by(Roll.id.desc()).limit(limit)))


def running_rolls(session: Session) -> list[tuple[int, str | None]]:
    """Every running roll's id and the driver holding it (None: nobody)."""
    query = select(Roll.id, Roll.driver).where(Roll.status == RollStatus.RUNNING.value)
    return [(row.id, row.driver) for row in session.execute(query.order_by(Roll.id))]


def has_step(session: Session, roll: Roll, step: str) -> bool:
    query = select(RollStep.id).where(RollStep.roll_id == roll.id, RollStep.step == step)
    return session.scalar(query.limit(1)) is not None


def steps_of(session: Session, roll: Roll, limit: int = 500) -> list[RollStep]:
    """Oldest first, the latest ``limit``."""
    query = select(RollStep).where(RollStep.roll_id == roll.id)
    rows = list(session.scalars(query.order_by(RollStep.id.desc()).limit(limit)))
    rows.reverse()
    return rows


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def summary(roll: Roll) -> dict[str, list[str]]:
    """Host names by where they are: done, running (starting included), waiting, failed."""
    out: dict[str, list[str]] = {"done": [], "running": [], "waiting": [], "failed": []}
    for row in roll.hosts:
        key = "running" if row.status in ACTIVE else row.status
        out[key].append(row.hostname)
    return out


def roll_view(session: Session, roll: Roll, *, steps: bool = True) -> dict[str, Any]:
    states = dict(
        session.execute(
            select(Host.id, Host.state).where(
                Host.id.in_([r.host_id for r in roll.hosts if r.host_id is not None])
            )
        ).all()
    )
    view: dict[str, Any] = {
        "id": roll.id,
        "status": roll.status,
        "pool": roll.pool or None,
        "profile": roll.profile or None,
        "power": roll.power,
        "max_parallel": roll.max_parallel,
        "continue_on_failure": roll.continue_on_failure,
        "host_timeout": roll.host_timeout,
        "requested_by": roll.requested_by,
        "message": roll.message,
        "driver": roll.driver,
        "created_at": _time(roll.created_at),
        "updated_at": _time(roll.updated_at),
        "finished_at": _time(roll.finished_at),
        **summary(roll),
        "hosts": [
            {
                "host_id": row.host_id,
                "hostname": row.hostname,
                "status": row.status,
                "state": states.get(row.host_id) if row.host_id is not None else None,
                "started_at": _time(row.started_at),
                "finished_at": _time(row.finished_at),
                "message": row.message,
            }
            for row in roll.hosts
        ],
    }
    if steps:
        view["steps"] = [
            {"time": _time(s.time), "host_id": s.host_id, "step": s.step, "message": s.message}
            for s in steps_of(session, roll)
        ]
    return view
