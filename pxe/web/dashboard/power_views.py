"""Dashboard power and rolling reinstalls: the Hosts page's power column, power buttons and
"reinstall with power" on a host's page, "reinstall pool" on the Pools page, the rolls' pages.

The power column never holds a page up: the page renders at once, then ``dashboard.js`` asks
``/ui/hosts/power/live`` for the hosts it shows. That answer is made from readings kept in
this process; a missing or old one is asked of the BMC in the background (through
pxe.bmc.service, whose own cache the API and the CLI share) and shows on the next ask.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Response, flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from pxe.bmc import service
from pxe.bmc.driver import PowerAction
from pxe.config import Settings
from pxe.db.models import Bmc
from pxe.db.session import Database
from pxe.store import hosts as host_store
from pxe.store import rolls as roll_store
from pxe.store.errors import InvalidInputError, StoreError
from pxe.web.context import db, settings, state
from pxe.web.dashboard.rows import host_name
from pxe.web.dashboard.views import bp

MAX_HOSTS = 500  # ids one power request may ask about
ROLLS_LISTED = 50


class _Readings:
    """Power cells by host id, refreshed in the background when missing or older than the
    BMC cache's lifetime."""

    def __init__(self) -> None:
        self.cells: dict[int, tuple[float, dict[str, Any]]] = {}
        self.asking: set[int] = set()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard-power")

    def read(self, database: Database, config: Settings, host_ids: list[int]) -> dict[str, Any]:
        ttl = max(float(config.bmc_status_cache_seconds), 2.0)
        now = time.monotonic()
        out: dict[str, Any] = {}
        with self.lock:
            for host_id in host_ids:
                cell = self.cells.get(host_id)
                if cell is not None:
                    out[str(host_id)] = cell[1]
                else:
                    out[str(host_id)] = {"power": None, "pending": True}
                if (cell is None or now - cell[0] > ttl) and host_id not in self.asking:
                    self.asking.add(host_id)
                    self.pool.submit(self._ask, database, config, host_id)
        return out

    def _ask(self, database: Database, config: Settings, host_id: int) -> None:
        try:
            reading = service.power_status(database, config, host_id)
            cell: dict[str, Any] = {"power": reading.state.value}
        except StoreError as exc:  # a BMC that failed, or a host gone meanwhile
            cell = {"power": None, "error": str(exc)}
        except Exception as exc:  # shown in the cell: the asking thread never dies
            cell = {"power": None, "error": f"{type(exc).__name__}: {exc}"}
        with self.lock:
            self.cells[host_id] = (time.monotonic(), cell)
            self.asking.discard(host_id)

    def forget(self, host_id: int) -> None:
        with self.lock:
            self.cells.pop(host_id, None)


_readings = _Readings()


def _ids() -> list[int]:
    raw = request.args.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"ids={raw!r} is not a list of host ids") from None
    return ids[:MAX_HOSTS]


@bp.get("/ui/hosts/power/live")
def power_live() -> Response:
    """``{"<id>": {"power": "on"|"off"|..., "error"?, "pending"?, "bmc": bool}}``, at once."""
    ids = _ids()
    with_bmc = set(db().scalars(select(Bmc.host_id).where(Bmc.host_id.in_(ids)))) if ids else set()
    cells = _readings.read(state().database, settings(), [i for i in ids if i in with_bmc])
    for host_id in ids:
        cells.setdefault(str(host_id), {"power": None})
        cells[str(host_id)]["bmc"] = host_id in with_bmc
    return jsonify(cells)


@bp.post("/ui/hosts/<int:host_id>/power")
def power(host_id: int) -> BaseResponse:
    action = request.form.get("action", "")
    if action not in {a.value for a in PowerAction}:
        raise InvalidInputError(f"unknown power action {action!r}")
    name = host_name(host_store.get_host(db(), host_id))
    try:
        service.power_action(
            state().database, settings(), host_id, PowerAction(action), g.dashboard_user
        )
    finally:
        _readings.forget(host_id)
    flash(f"{name}: power {action} acknowledged by its BMC.", "ok")
    return redirect(url_for("dashboard.host", host_id=host_id))


@bp.post("/ui/hosts/<int:host_id>/reinstall-power")
def reinstall_power(host_id: int) -> BaseResponse:
    try:
        view = service.reinstall_with_power(state().database, settings(), host_id,
                                            g.dashboard_user)  # fmt: skip
    finally:
        _readings.forget(host_id)
    flash(
        f"{view['hostname'] or host_id} reinstalls now: next boot from the network, power "
        "cycled through its BMC.",
        "ok",
    )
    return redirect(url_for("dashboard.host", host_id=host_id))


def _whole(name: str, default: int, low: int, high: int) -> int:
    raw = request.form.get(name, "").strip() or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInputError(f"{name.replace('_', ' ')} must be a number from {low} to {high}")
    return int(raw)


@bp.post("/ui/pools/<name>/reinstall")
def reinstall_pool(name: str) -> BaseResponse:
    wanted = roll_store.RollRequest(
        pool=name,
        power=request.form.get("power") == "on",
        max_parallel=_whole("max_parallel", 1, 1, roll_store.MAX_PARALLEL),
        continue_on_failure=request.form.get("continue_on_failure") == "on",
    )
    session = db(write=True)
    roll = roll_store.create_roll(session, wanted, g.dashboard_user)
    session.commit()
    flash(f"Roll {roll.id}: pool {name}, {roll.max_parallel} at a time.", "ok")
    return redirect(url_for("dashboard.roll", roll_id=roll.id))


@bp.get("/ui/reinstalls")
def rolls() -> str:
    session = db()
    views = [roll_store.roll_view(session, r, steps=False)
             for r in roll_store.list_rolls(session, limit=ROLLS_LISTED)]  # fmt: skip
    return render_template("dashboard/rolls.html", rolls=views)


def _roll_context(roll_id: int) -> dict[str, Any]:
    session = db()
    return {"roll": roll_store.roll_view(session, roll_store.get_roll(session, roll_id))}


@bp.get("/ui/reinstalls/<int:roll_id>")
def roll(roll_id: int) -> str:
    return render_template("dashboard/roll.html", **_roll_context(roll_id))


@bp.get("/ui/reinstalls/<int:roll_id>/live")
def roll_live(roll_id: int) -> str:
    return render_template("dashboard/_roll_live.html", **_roll_context(roll_id))
