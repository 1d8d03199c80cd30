"""The Flask app factory: settings in, a WSGI app out, migrated inventory underneath."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify

from pxe.config import Settings
from pxe.db.session import Database, open_database
from pxe.web import (
    answerfile,
    boot,
    context,
    dashboard,
    errors,
    health,
    installs,
    loaders,
    metrics,
    openapi,
    register,
    releases,
)
from pxe.web.api import audit as api_audit
from pxe.web.api import events as api_events
from pxe.web.api import hosts as api_hosts
from pxe.web.api import pools as api_pools
from pxe.web.api import power as api_power
from pxe.web.api import profiles as api_profiles
from pxe.web.api import reinstalls as api_reinstalls

log = logging.getLogger(__name__)

# Every part of the server's HTTP surface, in registration order.
BLUEPRINTS = (
    boot.bp,
    answerfile.bp,
    releases.bp,
    loaders.bp,
    installs.bp,
    api_hosts.bp,
    api_profiles.bp,
    api_pools.bp,
    api_events.bp,
    api_power.bp,
    api_reinstalls.bp,
    api_audit.bp,
    openapi.bp,
    register.bp,
    health.bp,
    dashboard.bp,
    metrics.bp,
)


def create_app(settings: Settings, *, database: Database | None = None) -> Flask:
    app = Flask("pxe.web")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = max(4 << 20, settings.max_log_bytes * 4)
    context.install(app, context.AppState(settings, database or open_database(settings)))
    errors.install(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz() -> Response:
        context.db().connection().exec_driver_sql("SELECT 1")
        return jsonify(status="ok")

    return app
