"""Calls an installing host makes with its install token: progress, failure, build-done.

Every route checks the token before it reads the body: 401/403 for a caller without a valid
token whatever it sent, 403 for one sent from another address than the token is bound to (a
security event), 400 only for a host that may report.

Each report may carry ``seq``, the installer's number for it in this install cycle (1, 2, 3...):
a retried report the server recorded already is answered as the first try was and recorded
once (:mod:`pxe.store.install_reports`)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from common import registration_key, wire
from pxe.store.bmc import check_seen
from pxe.store.errors import InvalidInputError
from pxe.store.install_reports import (
    Reporter,
    mark_failed,
    mark_installed,
    record_progress,
    use_install_token,
)
from pxe.store.lifecycle import State
from pxe.web.auth import install_reporter
from pxe.web.context import client_address, json_body, settings, state
from pxe.web.metrics import counting_refusals

bp = Blueprint("installs", __name__)


def _text(body: dict, key: str, limit: int, *, required: bool = False) -> str:
    value = body.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{key!r} must be a string")
    if required and not value.strip():
        raise InvalidInputError(f"{key!r} is required")
    return value[:limit]


def _percent(body: dict) -> int | None:
    value = body.get("percent")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InvalidInputError("'percent' must be a number from 0 to 100")
    return int(value)


def _seq(body: dict) -> int | None:
    value = body.get("seq")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise InvalidInputError("'seq' must be a whole number from 1")
    return value


def _key_hash(body: dict) -> str | None:
    value = body.get(registration_key.DIGEST_FIELD)
    if value is None:
        return None
    if not registration_key.is_digest(value):
        raise InvalidInputError(
            f"{registration_key.DIGEST_FIELD!r} must be a sha256: 64 lowercase hexadecimal digits"
        )
    return value


def _reporter(*, allow_spent: bool = False) -> Reporter:
    """The token's host, once this use of its token passed the address check (a first use
    binds it: :func:`pxe.store.install_reports.use_install_token`)."""
    host = install_reporter(allow_spent=allow_spent)
    with counting_refusals():
        use_install_token(state().database, host, host.token_hash, client_address())
    return host


@bp.post(wire.INSTALL_EVENTS)
def progress() -> tuple[Response, int]:
    host = _reporter()  # first: a caller without a valid token learns nothing of the body
    body = json_body()
    step = _text(body, "step", 128, required=True)
    message = _text(body, "message", 4096)
    percent = _percent(body)
    seq = _seq(body)
    seen = None if body.get("bmc") is None else check_seen(body["bmc"])
    # For the installs-started counter (pxe.web.metrics): only a ready host's first report.
    g.xcp_install_starting = record_progress(
        state().database, host, step, percent, message, seq=seq, bmc_seen=seen
    )
    return jsonify(state=State.INSTALLING.value), 202


@bp.post(wire.INSTALL_FAILED)
def failed() -> tuple[Response, int]:
    host = _reporter()  # first, as for progress
    body = json_body()
    reason = _text(body, "reason", 1024, required=True)
    log_text = body.get("log", "")
    if not isinstance(log_text, str):
        raise InvalidInputError("'log' must be a string")
    cap = settings().max_log_bytes
    raw = log_text.encode("utf-8", "replace")
    truncated = len(raw) > cap
    if truncated:  # keep the end: that is where an install log says what went wrong
        log_text = raw[-cap:].decode("utf-8", "ignore")
    mark_failed(state().database, host, reason, log_text, seq=_seq(body))
    return jsonify(state=State.FAILED.value, log_bytes=len(log_text.encode()),
                   truncated=truncated), 202  # fmt: skip


@bp.post(wire.INSTALL_DONE)
def done() -> tuple[Response, int]:
    """Once only: a second build-done is a 409, unless it is a retry of the first (the same
    ``seq``); a spent token still counts: registration may spend it before a slow installer
    reports. It may carry the sha256 of the registration key the installer left on the host
    (:mod:`common.registration_key`)."""
    host = _reporter(allow_spent=True)
    body = json_body()
    mark_installed(
        state().database, host, seq=_seq(body), registration_key_hash=_key_hash(body)
    )
    return jsonify(state=State.INSTALLED.value), 200
