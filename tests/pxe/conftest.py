"""Fixtures of the server tests: settings on a temporary data directory, a migrated inventory
on SQLite or on a throwaway PostgreSQL, the Flask app, an API token, the demo release."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bmc_sim import IpmiSim, running_ipmi_sim
from support.postgres import PostgresCluster, postgres_cluster

from images.demo import build_demo_release
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store.tokens import create_api_token
from pxe.web.app import create_app


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_url="http://pxe.test:8080")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Database]:
    """The inventory on each backend the server supports, migrated from empty."""
    if request.param == "sqlite":
        url = settings.database
    else:
        url = request.getfixturevalue("postgres").new_database()
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def demo_release(settings: Settings) -> Path:
    release_dir = settings.releases_dir / "demo"
    release_dir.mkdir(parents=True)
    build_demo_release(release_dir)
    return release_dir


@pytest.fixture
def app(settings: Settings, database: Database, demo_release: Path):
    return create_app(settings, database=database)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_token(database: Database) -> str:
    with database.scope() as session:
        return create_api_token(session, "tests")


@pytest.fixture
def auth(api_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[IpmiSim]:
    """A real BMC (OpenIPMI's ipmi_sim) on a loopback port, its chassis powered off."""
    with running_ipmi_sim(tmp_path / "ipmi") as running:
        yield running


@pytest.fixture
def fresh_bmc_cache() -> Iterator[None]:
    """BMC readings are cached per process: each test starts and ends without any."""
    from pxe.bmc import service  # noqa: PLC0415 - only the BMC tests pay for pyghmi and sushy

    service.forget_cached()
    yield
    service.forget_cached()
