"""Fixtures of the dashboard tests: an app on a temporary data directory with the demo release,
a profile whose answer file carries a real root password hash, an API token, and a client that
signed in through the login form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from answerfiles.password import hash_password
from images.demo import build_demo_release
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.pools import create_pool
from pxe.store.profiles import create_profile
from pxe.store.tokens import create_api_token
from pxe.web.app import create_app
from tests.dashboard.forms import sign_in

ROOT_HASH = hash_password("rack-secret")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_url="http://pxe.test:8080")


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database)
    database.migrate()
    release = settings.releases_dir / "demo"
    release.mkdir(parents=True)
    build_demo_release(release)
    with database.scope() as session:
        create_profile(
            session,
            "demo",
            release="demo",
            template="fresh-dhcp",
            variables={"root_password_hash": ROOT_HASH},
        )
        create_pool(session, "rack1")
        create_pool(session, "rack2")
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database=database)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api_token(database: Database) -> str:
    with database.scope() as session:
        return create_api_token(session, "operator")


@pytest.fixture
def signed_in(client: FlaskClient, api_token: str) -> tuple[FlaskClient, str]:
    """A signed-in client and its CSRF token."""
    return client, sign_in(client, api_token)
