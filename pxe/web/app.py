"""The Flask app factory: settings in, a WSGI app out, migrated inventory underneath."""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response, jsonify

from pxe.config import Settings
from pxe.db.session import Database, open_database
from pxe.web import context, errors

log = logging.getLogger(__name__)

# Every blueprint module of the server, each exposing ``bp``. Others' modules are listed here too
# and registered when they exist; append yours to this list.
BLUEPRINTS = [
    "pxe.web.boot",
    "pxe.web.answerfile",
    "pxe.web.releases",
    "pxe.web.installs",
    "pxe.web.api.hosts",
    "pxe.web.api.profiles",
    "pxe.web.api.pools",
    "pxe.web.api.events",
    "pxe.web.openapi",
    "pxe.web.register",
    "pxe.web.dashboard",
    "pxe.web.metrics",
]
# Modules written by other engineers that may not exist yet in a given checkout.
OPTIONAL = {"pxe.web.register", "pxe.web.dashboard"}


def create_app(settings: Settings, *, database: Database | None = None) -> Flask:
    app = Flask("pxe.web")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = max(4 << 20, settings.max_log_bytes * 4)
    context.install(app, context.AppState(settings, database or open_database(settings)))
    errors.install(app)
    for name in BLUEPRINTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name in OPTIONAL and exc.name == name:
                continue
            raise
        app.register_blueprint(module.bp)

    @app.get("/healthz")
    def healthz() -> Response:
        context.db().connection().exec_driver_sql("SELECT 1")
        return jsonify(status="ok")

    return app
