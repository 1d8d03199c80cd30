"""An installed host reports its health: who may, what is kept, when it becomes an event.

Who: the holder of the host's report token, which only its registration answer carries (see
:mod:`pxe.registration`: the install token, from the address it is bound to, with the MAC,
SMBIOS UUID and serial the host reported at PXE time). Knowing a host's MAC, UUID or serial
opens nothing here. A reinstall withdraws the token; the next registration hands out another.

What: the last report, as :mod:`pxe.health_report` reads it, replaces the one before.

When: only a change of an array's state is an event, so a host reporting every few minutes
leaves no trail while nothing happens. A mirror that degrades or fails is a ``raid-warning``
event and a warning in the log; any other change (resyncing, clean again) a ``raid`` event.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from pxe.db.models import Host
from pxe.db.session import Database
from pxe.db.write_retry import write_with_retries
from pxe.health_report import WARNING_STATES, HealthReport, RaidState, parse_health
from pxe.store.errors import StoreError
from pxe.store.events import record_event
from pxe.store.health import save_health
from pxe.store.tokens import host_for_report_token

log = logging.getLogger(__name__)

EVENT = "raid"
WARNING_EVENT = "raid-warning"


class ReportTokenError(StoreError):
    """No report token, or one no host holds now (401): the agent stops, it does not retry."""

    status = 401


def report_health(database: Database, token: str | None, body: Any) -> HealthReport:
    """Keep one health report; raises a :class:`StoreError` whose ``status`` is the HTTP
    code. The token is checked before the body is read, so a caller without one learns
    nothing of what a report may hold."""
    if not token:
        raise ReportTokenError("health reports need 'Authorization: Bearer <report token>'")
    with database.scope(write=False) as session:
        _holder(session, token)
    report = parse_health(body)
    write_with_retries(database, lambda session: _keep(session, token, report))
    return report


def _holder(session: Session, token: str) -> Host:
    host = host_for_report_token(session, token)
    if host is None:
        raise ReportTokenError(
            "this report token is not valid: the host was reinstalled or registered again "
            "since it was given"
        )
    return host


def _keep(session: Session, token: str, report: HealthReport) -> None:
    host = _holder(session, token)  # again, inside the write: a registration may replace it
    state = report.raid_state
    before = save_health(session, host, [a.to_json() for a in report.raid], state.value)
    was = {str(a.get("name")): a.get("state") for a in before}
    changed = [a for a in report.raid if was.get(a.name) != a.state.value]
    gone = sorted(set(was) - {a.name for a in report.raid})
    if not changed and not gone:
        return
    message = "; ".join([a.describe() for a in changed] + [f"{n} no longer reported" for n in gone])
    name = host.hostname or f"host {host.id}"
    if state in WARNING_STATES:
        record_event(session, host, WARNING_EVENT, message, step=state.value)
        log.warning("host %s: software RAID %s: %s", name, state.value, message)
    else:
        record_event(session, host, EVENT, message, step=state.value)
        log.info("host %s: software RAID %s: %s", name, state.value, message)


def summary(raid_state: str | None, raid: list[dict[str, Any]]) -> str:
    """One line for tables and the dashboard: ``degraded: md127 raid1 1 of 2``; "" before the
    first report."""
    if raid_state is None:
        return ""
    if raid_state == RaidState.NONE:
        return "no software RAID"
    arrays = ", ".join(
        f"{a.get('name')} {a.get('level')} {a.get('members')} of {a.get('expected')}"
        + (f" {a['progress']:.1f}%" if a.get("state") == RaidState.RESYNCING
           and a.get("progress") is not None else "")
        for a in raid
    )  # fmt: skip
    return f"{raid_state}: {arrays}"
