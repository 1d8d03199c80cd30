"""What the dashboard shows of each host: a row with its latest event and install progress.

Two grouped queries per page (latest event, latest progress event) instead of one per host, so
a page of a hundred hosts costs a few queries whatever their histories hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pxe.db.models import Event, Host
from pxe.health import summary
from pxe.store.health import health_of
from pxe.store.lifecycle import State
from pxe.store.views import is_queued


@dataclass(frozen=True)
class LastEvent:
    time: datetime
    kind: str
    text: str


@dataclass(frozen=True)
class Progress:
    step: str
    percent: int | None
    message: str


@dataclass(frozen=True)
class HostRow:
    id: int
    name: str
    macs: list[str]
    state: str
    state_reason: str
    profile: str | None
    pool: str | None
    progress: Progress | None  # only while installing
    last_event: LastEvent | None
    queued: bool = False  # ready, waiting for an install slot (max_concurrent_installs)
    install_attempts: int = 0
    # Its software RAID as last reported (pxe.health): the worst array's state, and one line.
    raid_state: str | None = None
    raid_summary: str = ""


def host_name(host: Host) -> str:
    return host.hostname or f"host-{host.id}"


def event_text(event: Event) -> str:
    parts = [event.step, event.message]
    text = " — ".join(p for p in parts if p)
    if event.percent is not None:
        text = f"{text} ({event.percent}%)"
    return text or event.kind


def _latest(session: Session, host_ids: list[int], kind: str | None = None) -> dict[int, Event]:
    if not host_ids:
        return {}
    newest = select(func.max(Event.id)).where(Event.host_id.in_(host_ids))
    if kind is not None:
        newest = newest.where(Event.kind == kind)
    events = session.scalars(select(Event).where(Event.id.in_(newest.group_by(Event.host_id))))
    return {e.host_id: e for e in events}


def host_rows(session: Session, hosts: list[Host]) -> list[HostRow]:
    ids = [h.id for h in hosts]
    latest = _latest(session, ids)
    installing = [h.id for h in hosts if h.state == State.INSTALLING]
    progress = _latest(session, installing, "progress")
    rows = []
    for host in hosts:
        last = latest.get(host.id)
        step = progress.get(host.id)
        health = health_of(host)
        raid_state = health.raid_state if health is not None else None
        rows.append(
            HostRow(
                id=host.id,
                name=host_name(host),
                macs=host.mac_list,
                state=host.state,
                state_reason=host.state_reason,
                profile=host.profile.name if host.profile else None,
                pool=host.pool.name if host.pool else None,
                progress=Progress(step.step, step.percent, step.message) if step else None,
                last_event=LastEvent(last.time, last.kind, event_text(last)) if last else None,
                queued=is_queued(host),
                install_attempts=host.install_attempts or 0,
                raid_state=raid_state,
                raid_summary=summary(raid_state, health.raid if health is not None else []),
            )
        )
    return rows
