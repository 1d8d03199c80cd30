"""``/answerfile/<host id or MAC>?token=...``: the host's answer file, rendered and validated.

The token in the URL is the host's current install token: the URL is on the installer's kernel
command line, which is the only thing the installer has before it has an answer file. Its first
use binds it to the client's address and ends the handing out of tokens for this install
(:mod:`pxe.boot.decide`); from any other address it opens nothing (403, a security event).

Every installing host asks once, so the host, its profile's ancestry and their pools are read as
plain columns in one prepared query (:mod:`pxe.db.prepared`), not as ORM objects with their
relations loaded one by one.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from werkzeug.exceptions import Forbidden, Unauthorized

from answerfiles.render import RenderError
from common import wire
from pxe.boot.answerfile import AnswerFileUnavailableError, answerfile_for
from pxe.store.events import record_event
from pxe.store.hosts import answerfile_host, get_host
from pxe.store.install_reports import use_install_token
from pxe.store.tokens import hash_token
from pxe.web.context import base_url, client_address, db, settings, state
from pxe.web.errors import error_response
from pxe.web.metrics import counting_refusals

bp = Blueprint("answerfile", __name__)


@bp.get(f"{wire.ANSWERFILE}/<ref>")
def answerfile(ref: str) -> Response | tuple[Response, int]:
    token = request.args.get("token", "")
    if not token:
        raise Unauthorized("the answer file needs the host's install token as ?token=")
    database = state().database
    host = answerfile_host(database.engine, ref)
    digest = hash_token(token)
    if not host.install_token_hash or not hmac.compare_digest(host.install_token_hash, digest):
        raise Forbidden(f"this token is not host {ref}'s current install token")
    with counting_refusals():
        use_install_token(database, host, digest, client_address())
    try:
        text = answerfile_for(settings(), host, token, base_url())
    except (RenderError, AnswerFileUnavailableError) as exc:
        writer = db(write=True)
        record_event(writer, get_host(writer, host.id), "answerfile", f"no answer file: {exc}")
        writer.commit()
        return error_response(500 if isinstance(exc, RenderError) else 409, str(exc))
    response = Response(text, mimetype="application/xml")
    response.headers["Cache-Control"] = "no-store"
    return response
