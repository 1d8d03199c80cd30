"""``/releases/<name>/<path>``: release files with Range, ETag and conditional GET.

Werkzeug's ``send_file(conditional=True)`` answers Range and If-None-Match/If-Modified-Since and
hands the open file to the WSGI server's file wrapper, so a 300 MiB dom0 image is streamed, not
read into memory. Behind nginx (``release_accel_prefix``) the file is handed over with
X-Accel-Redirect instead: nginx sends it with sendfile and answers Range and ETag itself. Paths
are resolved and must stay inside the release directory (no symlink or ``..`` escapes) in both
cases, so the front server only ever sees paths we checked.
"""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import quote

from flask import Blueprint, Response, send_file
from werkzeug.exceptions import NotFound

from common import wire
from pxe.store.names import check_name
from pxe.web.context import settings

bp = Blueprint("releases", __name__)


def _resolve(name: str, path: str) -> str:
    root = os.path.realpath(settings().releases_dir / name)
    target = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, target]) != root or not os.path.isfile(target):
        raise NotFound(f"release {name} has no file {path!r}")
    return target


@bp.get(f"{wire.RELEASES}/<name>/<path:path>")
def release_file(name: str, path: str) -> Response:
    check_name("release", name)
    target = _resolve(name, path)
    prefix = settings().release_accel_prefix
    if prefix:
        relative = os.path.relpath(target, os.path.realpath(settings().releases_dir))
        kind = mimetypes.guess_type(target)[0] or "application/octet-stream"
        offloaded = Response(status=200, content_type=kind)
        offloaded.headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(relative)
        return offloaded
    response = send_file(target, conditional=True, etag=True, max_age=0)
    response.headers["Accept-Ranges"] = "bytes"
    return response


@bp.get(f"{wire.RELEASES}/<name>/")
def release_manifest(name: str) -> Response:
    """The release directory itself answers with its manifest, which lists every file."""
    check_name("release", name)
    return send_file(_resolve(name, "manifest.json"), conditional=True, etag=True, max_age=0)
