"""Dashboard pages and actions. Pages are server-rendered; the parts that change during an
install (host rows, a host's status and timeline) are also served alone as ``.../live``
fragments that ``dashboard.js`` fetches every two seconds and swaps in place.

Every route but the login form needs a signed-in session: pages redirect to the login form,
fragments and actions answer 401; every form post must carry the session's CSRF token (403).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from pxe.pools_view import pool_detail
from pxe.registration import on_host_removed
from pxe.store import hosts as store
from pxe.store.audit import audit_view, list_audit, parse_since
from pxe.store.bmc import bmc_of
from pxe.store.errors import NotFoundError, StoreError
from pxe.store.events import list_events
from pxe.store.health import health_of
from pxe.store.lifecycle import State
from pxe.store.pools import list_pools
from pxe.store.profiles import list_profiles
from pxe.store.security_events import count_security_events, recent_security_events
from pxe.store.tokens import ADMIN
from pxe.store.views import bmc_view, health_view
from pxe.web import audit_trail
from pxe.web.context import base_url, db, settings
from pxe.web.dashboard import login
from pxe.web.dashboard.answerfile_preview import preview
from pxe.web.dashboard.rows import event_text, host_name, host_rows

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)

PAGE_SIZE = 100
TIMELINE = 100
SECURITY_LIST = 5  # the latest security events listed above the hosts
_PUBLIC = {"dashboard.login_form", "dashboard.login_post", "dashboard.static", "dashboard.root"}
# Every other POST is an action: audited, and refused to a viewer token. Names as the CLI's.
_NOT_ACTIONS = {"dashboard.login_post", "dashboard.logout"}
_ACTION_NAMES = {
    "dashboard.assign": "hosts.assign",
    "dashboard.reinstall": "hosts.reinstall",
    "dashboard.remove": "hosts.remove",
    "dashboard.power": "hosts.power",
    "dashboard.reinstall_power": "hosts.reinstall",
    "dashboard.reinstall_pool": "reinstalls.create",
}
_FORM_PLUMBING = {"csrf", "next"}


def _setup(state: BlueprintSetupState) -> None:
    app_state = state.app.extensions["xcp_provision"]
    login.configure(state.app, app_state.settings)
    state.app.jinja_env.filters["ago"] = _ago


bp.record_once(_setup)


def _ago(when: datetime | None) -> str:
    if when is None:
        return ""
    seconds = int((datetime.now(UTC) - when).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return when.strftime("%Y-%m-%d")


def _is_fragment() -> bool:
    return request.path.endswith("/live")


@bp.before_request
def _require_session() -> BaseResponse | None:
    if request.endpoint in _PUBLIC:
        return None
    token = login.signed_in_token()
    if token is None:
        login.sign_out()
        if request.method == "GET" and not _is_fragment():
            return redirect(url_for("dashboard.login_form", next=request.full_path.rstrip("?")))
        abort(401, "sign in to the dashboard first")
    g.dashboard_user = token.name
    g.dashboard_admin = token.role == ADMIN
    action = request.method == "POST" and request.endpoint not in _NOT_ACTIONS
    if action:
        _begin_audit()
    if request.method == "POST" and not login.csrf_valid(request.form.get("csrf")):
        abort(403, "this form has expired or did not come from the dashboard; reload the page")
    if action and not g.dashboard_admin:
        abort(403, f"your API token's role is {token.role}, which may look but not act")
    return None


def _begin_audit() -> None:
    endpoint = request.endpoint or ""
    fields = sorted(set(request.form) - _FORM_PLUMBING)
    audit_trail.begin(
        actor=g.dashboard_user,
        action=_ACTION_NAMES.get(endpoint, endpoint),
        target="/".join(str(v) for v in (request.view_args or {}).values()),
        fields=fields,
        keep=[v for k in fields for v in request.form.getlist(k)],
    )


@bp.after_request
def _audit_result(response: Response) -> Response:
    status, error = g.pop("dashboard_refusal", (response.status_code, None))
    audit_trail.finish(status, error)
    return response


# Our own script and styles only (the progress bars' widths are inline style attributes),
# never inside another site's frame.
_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": login.csrf_token, "State": State}


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    g.dashboard_refusal = (code, exc.description or exc.name)
    if _is_fragment():
        return exc.description or exc.name, code
    return render_template("dashboard/error.html", code=code, exc=exc), code


@bp.errorhandler(StoreError)
def _store_error(exc: StoreError) -> BaseResponse | tuple[str, int]:
    """Refused actions come back to the page they were made from, with the reason on top."""
    g.dashboard_refusal = (exc.status, str(exc))
    if isinstance(exc, NotFoundError) or request.method == "GET":
        return render_template("dashboard/error.html", code=exc.status, exc=exc), exc.status
    flash(str(exc), "error")
    return redirect(_back())


def _back(default: str | None = None) -> str:
    """Where a form asked to return to: a dashboard path only, never another site."""
    target = request.form.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/ui") and not parts.scheme and not parts.netloc:
        return target
    return default or url_for("dashboard.hosts")


# Sign in and out ---------------------------------------------------------------------------


@bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("dashboard.hosts"))


@bp.get("/ui/login")
def login_form() -> str:
    return render_template("dashboard/login.html", next=request.args.get("next", ""))


@bp.post("/ui/login")
def login_post() -> BaseResponse | tuple[str, int]:
    if not login.csrf_valid(request.form.get("csrf")):
        abort(403, "the login form has expired; reload it and sign in again")
    name = login.sign_in(request.form.get("token", ""))
    if name is None:
        flash("That API token is not valid (unknown or revoked).", "error")
        page = render_template("dashboard/login.html", next=request.form.get("next", ""))
        return page, 401
    return redirect(_back())


@bp.post("/ui/logout")
def logout() -> BaseResponse:
    login.sign_out()
    return redirect(url_for("dashboard.login_form"))


# Hosts --------------------------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    state = request.args.get("state") or None
    if state is not None and state not in {s.value for s in State}:
        abort(400, f"unknown state {state!r}")
    pool = request.args.get("pool") or None
    try:
        page = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        page = 1
    return {"state": state, "pool": pool, "page": page}


def _host_page(filters: dict[str, Any]) -> dict[str, Any]:
    session = db()
    found = store.list_hosts(
        session,
        state=filters["state"],
        pool=filters["pool"],
        limit=PAGE_SIZE + 1,
        offset=(filters["page"] - 1) * PAGE_SIZE,
    )
    return {
        "rows": host_rows(session, found[:PAGE_SIZE]),
        "has_next": len(found) > PAGE_SIZE,
        "filters": filters,
    }


@bp.get("/ui/")
def hosts() -> str:
    filters = _filters()
    session = db()
    day_ago = datetime.now(UTC) - timedelta(days=1)
    return render_template(
        "dashboard/hosts.html",
        **_host_page(filters),
        counts=store.count_hosts_by_state(session),
        pools=[p.name for p in list_pools(session)],
        security_count=count_security_events(session, since=day_ago),
        security_events=recent_security_events(session, since=day_ago, limit=SECURITY_LIST),
    )


@bp.get("/ui/hosts/live")
def hosts_live() -> str:
    return render_template("dashboard/_host_rows.html", **_host_page(_filters()))


@bp.get("/ui/hosts/counts/live")
def counts_live() -> str:
    filters = {"pool": request.args.get("pool") or None}
    return render_template(
        "dashboard/_counts.html", counts=store.count_hosts_by_state(db()), filters=filters
    )


@bp.get("/ui/discovered")
def discovered() -> str:
    session = db()
    return render_template(
        "dashboard/discovered.html",
        hosts=store.list_hosts(session, state=State.DISCOVERED.value, limit=PAGE_SIZE),
        profiles=[p.name for p in list_profiles(session)],
        pools=[p.name for p in list_pools(session)],
    )


def _timeline(host_id: int) -> dict[str, Any]:
    session = db()
    host = store.get_host(session, host_id)
    events = list_events(session, host=host, limit=TIMELINE)
    events.reverse()  # newest first on screen
    row = host_rows(session, [host])[0]
    return {"host": host, "row": row, "events": events, "event_text": event_text,
            "health": health_view(health_of(host))}  # fmt: skip


@bp.get("/ui/hosts/<int:host_id>")
def host(host_id: int) -> str:
    context = _timeline(host_id)
    session = db()
    return render_template(
        "dashboard/host.html",
        **context,
        name=host_name(context["host"]),
        answerfile=preview(settings(), context["host"], base_url()),
        profiles=[p.name for p in list_profiles(session)],
        pools=[p.name for p in list_pools(session)],
        bmc=bmc_view(bmc_of(context["host"])),  # never its password
    )


@bp.get("/ui/hosts/<int:host_id>/live")
def host_live(host_id: int) -> str:
    return render_template("dashboard/_host_live.html", **_timeline(host_id))


@bp.post("/ui/hosts/<int:host_id>/assign")
def assign(host_id: int) -> BaseResponse:
    session = db(write=True)
    host = store.get_host(session, host_id)
    store.update_host(
        session,
        host,
        profile=request.form.get("profile") or None,
        pool=request.form.get("pool") or None,
    )
    session.commit()
    flash(
        f"{host_name(host)}: profile {host.profile.name if host.profile else 'none'}, "
        f"pool {host.pool.name if host.pool else 'none'}; it is {host.state}.",
        "ok",
    )
    return redirect(_back(url_for("dashboard.host", host_id=host_id)))


@bp.post("/ui/hosts/<int:host_id>/reinstall")
def reinstall(host_id: int) -> BaseResponse:
    session = db(write=True)
    host = store.get_host(session, host_id)
    store.reinstall_host(
        session, host, f"reinstall requested from the dashboard by {g.dashboard_user}"
    )
    session.commit()
    flash(f"{host_name(host)} will reinstall at its next network boot.", "ok")
    return redirect(url_for("dashboard.host", host_id=host_id))


@bp.post("/ui/hosts/<int:host_id>/remove")
def remove(host_id: int) -> BaseResponse:
    session = db(write=True)
    host = store.get_host(session, host_id)
    name = host_name(host)
    problems = on_host_removed(settings(), host)
    store.remove_host(session, host)
    session.commit()
    flash(f"{name} removed from the inventory.", "ok")
    for problem in problems:
        flash(f"Its DNS records were not removed: {problem}", "error")
    return redirect(url_for("dashboard.hosts"))


# Pools --------------------------------------------------------------------------------------


@bp.get("/ui/pools")
def pools() -> str:
    session = db()
    return render_template(
        "dashboard/pools.html", pools=[pool_detail(session, p) for p in list_pools(session)]
    )


# Audit --------------------------------------------------------------------------------------


@bp.get("/ui/audit")
def audit() -> str:
    since = request.args.get("since") or ""
    after = parse_since(since) if since else None  # a bad one: the error page, 400
    rows = [audit_view(r) for r in list_audit(db(), since=after, limit=PAGE_SIZE * 2)]
    return render_template("dashboard/audit.html", rows=rows, since=since)
