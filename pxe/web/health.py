"""``POST /api/v1/health``: an installed host reports its health (its software RAID arrays).

The wire protocol the first-boot agent's ``--report`` mode (dom0/firstboot/agent.py) is
written against; who may report and what is kept are :mod:`pxe.health`'s. Statuses: 200 with
the state the server judged; 400 naming the bad field; 401 without a report token or with one
no host holds now (reinstalled, or registered again since); 503 + Retry-After while the
inventory database cannot be reached, which the agent retries.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from common import wire
from pxe.health import report_health
from pxe.health_report import HealthReportError
from pxe.web.auth import bearer_token
from pxe.web.context import state

bp = Blueprint("health", __name__)


@bp.errorhandler(HealthReportError)
def _bad_field(exc: HealthReportError) -> tuple[Response, int]:
    return jsonify(error=str(exc), field=exc.field), 400


@bp.post(wire.HEALTH)
def health() -> tuple[Response, int]:
    body = request.get_json(silent=True) if request.get_data(cache=True) else None
    report = report_health(state().database, bearer_token(), body)
    return jsonify(
        raid_state=report.raid_state.value, raid=[array.to_json() for array in report.raid]
    ), 200
