"""The dashboard's forms as a test fills them: CSRF token from the page, sign-in by token."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: FlaskClient, token: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = client.get("/ui/login").get_data(as_text=True)
    response = client.post("/ui/login", data={"csrf": csrf_in(form), "token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_in(client.get("/ui/").get_data(as_text=True))
