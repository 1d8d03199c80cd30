"""Nothing of the dashboard without a signed-in session; no action without the form's CSRF
token; revoking the API token ends its sessions; the signing key lives in the data directory."""

from __future__ import annotations

import stat

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.hosts import add_host, get_host
from pxe.store.tokens import revoke_api_token
from pxe.web.app import create_app
from pxe.web.dashboard.login import SECRET_FILE, UI_PREFIX
from tests.dashboard.forms import csrf_in, sign_in

PUBLIC = {"dashboard.login_form", "dashboard.login_post", "dashboard.static", "dashboard.root"}


@pytest.fixture
def host_id(database: Database) -> int:
    with database.scope() as session:
        return add_host(session, macs=["52:54:00:aa:00:01"], profile="demo", pool="rack1").id


def dashboard_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, URL) of every dashboard route but the public ones, with host 1 filled in."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("dashboard.") or rule.endpoint in PUBLIC:
            continue
        url = rule.rule.replace("<int:host_id>", "1").replace("<int:roll_id>", "1")
        url = url.replace("<name>", "rack1")
        assert "<" not in url, f"test does not know how to fill {rule.rule}"
        routes.extend((method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return routes


def test_every_route_is_refused_without_a_session(
    app: Flask, client: FlaskClient, database: Database, host_id: int
) -> None:
    routes = dashboard_routes(app)
    # Pages, fragments and actions of every kind are covered.
    assert {
        "/ui/",
        "/ui/hosts/1",
        "/ui/pools",
        "/ui/discovered",
        "/ui/hosts/live",
        "/ui/hosts/1/live",
    } <= {url for method, url in routes if method == "GET"}
    assert {"/ui/hosts/1/reinstall", "/ui/hosts/1/remove", "/ui/hosts/1/assign", "/ui/logout"} <= {
        url for method, url in routes if method == "POST"
    }
    for method, url in routes:
        response = client.open(url, method=method, data={"profile": "", "pool": ""})
        if method == "GET" and not url.endswith("/live"):
            assert response.status_code == 302, url
            assert response.headers["Location"].startswith("/ui/login?next="), url
        else:
            assert response.status_code == 401, (method, url)
        assert b"rack1" not in response.data
    with database.scope() as session:  # the refused actions changed nothing
        host = get_host(session, host_id)
        assert (host.state, host.pool.name, host.profile.name) == ("ready", "rack1", "demo")


def test_a_bad_token_does_not_sign_in(client: FlaskClient) -> None:
    csrf = csrf_in(client.get("/ui/login").get_data(as_text=True))
    response = client.post("/ui/login", data={"csrf": csrf, "token": "xpa_not-a-token"})
    assert response.status_code == 401
    assert "not valid" in response.get_data(as_text=True)
    assert client.get("/ui/").status_code == 302


def test_login_needs_the_forms_csrf_token(client: FlaskClient, api_token: str) -> None:
    client.get("/ui/login")
    assert client.post("/ui/login", data={"token": api_token}).status_code == 403
    assert client.post("/ui/login", data={"token": api_token, "csrf": "x"}).status_code == 403
    assert client.get("/ui/").status_code == 302


def test_actions_need_the_sessions_csrf_token(
    signed_in: tuple[FlaskClient, str], database: Database, host_id: int
) -> None:
    client, csrf = signed_in
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf[:-1]}):
        for action in ("remove", "reinstall", "assign"):
            response = client.post(f"/ui/hosts/{host_id}/{action}", data=data)
            assert response.status_code == 403, (action, data)
    with database.scope() as session:
        assert get_host(session, host_id).state == "ready"
    assert client.post(f"/ui/hosts/{host_id}/remove", data={"csrf": csrf}).status_code == 302


def test_revoking_the_token_ends_its_sessions(
    signed_in: tuple[FlaskClient, str], database: Database
) -> None:
    client, _ = signed_in
    assert client.get("/ui/").status_code == 200
    with database.scope() as session:
        revoke_api_token(session, "operator")
    assert client.get("/ui/").status_code == 302
    assert client.get("/ui/hosts/live").status_code == 401


def test_the_cookie_carries_no_token_and_next_stays_on_the_dashboard(
    client: FlaskClient, api_token: str
) -> None:
    csrf = csrf_in(client.get("/ui/login").get_data(as_text=True))
    for target, expected in (
        ("/ui/pools", "/ui/pools"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui", "/ui/"),
        ("/api/v1/hosts", "/ui/"),
    ):
        response = client.post("/ui/login", data={"csrf": csrf, "token": api_token, "next": target})
        assert response.headers["Location"] == expected, target
        csrf = csrf_in(client.get("/ui/").get_data(as_text=True))
    cookie = client.get_cookie("xcp_provision_session")
    assert cookie is not None and cookie.http_only
    assert api_token not in cookie.value and api_token[4:20] not in cookie.value


def test_the_signing_key_is_kept_in_the_data_dir(
    settings: Settings, database: Database, client: FlaskClient, api_token: str
) -> None:
    key_file = settings.data_dir / SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) >= 32
    sign_in(client, api_token)
    cookie = client.get_cookie("xcp_provision_session")
    # The server restarts: same data directory, same key, the session still holds.
    restarted = create_app(settings, database=database).test_client()
    restarted.set_cookie("xcp_provision_session", cookie.value)
    assert restarted.get("/ui/").status_code == 200
    # Another server with another data directory does not accept it.
    other = create_app(
        Settings(data_dir=settings.data_dir.parent / "other"), database=database
    ).test_client()
    other.set_cookie("xcp_provision_session", cookie.value)
    assert other.get("/ui/").status_code == 302


def test_pages_carry_a_strict_content_security_policy(signed_in: tuple[FlaskClient, str]) -> None:
    client, _ = signed_in
    for url in ("/ui/", "/ui/login", "/ui/hosts/live"):
        headers = client.get(url).headers
        assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'self'
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
    js = client.get("/ui/static/dashboard.js")
    assert js.status_code == 200 and b"data-live" in js.data


def test_the_cookie_is_secure_behind_https(
    settings: Settings, database: Database, api_token: str
) -> None:
    app = create_app(settings.replace(public_url="https://pxe.example"), database=database)
    client = app.test_client()
    sign_in(client, api_token)
    assert client.get_cookie("xcp_provision_session").secure


def test_sessions_are_opened_for_dashboard_pages_only(
    app: Flask, client: FlaskClient, api_token: str
) -> None:
    """Every dashboard route lives under /ui/, where the session is read; hosts and API
    clients get Flask's null session, which is never signed nor sent."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("dashboard.") and rule.endpoint != "dashboard.root":
            assert rule.rule.startswith(UI_PREFIX), rule.rule
    for path, opened in (("/ui/", True), ("/healthz", False), ("/api/v1/hosts", False)):
        with app.test_request_context(path) as ctx:
            assert (app.session_interface.open_session(app, ctx.request) is not None) == opened
    sign_in(client, api_token)
    assert client.get("/ui/").status_code == 200  # the signed-in session is still read there
    assert "Set-Cookie" not in client.get("/healthz").headers
