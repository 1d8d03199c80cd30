"""``/boot/ipxe``: the iPXE script for whoever asks, computed now from the inventory."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, request

from pxe.boot import decide_and_record
from pxe.ipxe import chain_script, render_ipxe
from pxe.web.context import base_url, settings, state

bp = Blueprint("boot", __name__)


def _script(text: str, status: int = 200) -> Response:
    response = Response(text, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/boot/ipxe")
def ipxe_script() -> Response:
    args = request.args
    mac = args.get("mac", "").strip()
    base = base_url()
    if not mac:
        return _script(chain_script(base))
    plan = decide_and_record(
        state().database,
        settings(),
        mac=mac,
        uuid=args.get("uuid") or None,
        serial=args.get("serial") or None,
        arch=args.get("arch") or None,
        remote_addr=request.remote_addr,
        base_url=base,
    )
    again = f"{base}/boot/ipxe?" + urlencode(
        {k: v for k, v in args.items() if k in ("mac", "uuid", "serial", "arch")}
    )
    return _script(render_ipxe(plan, again_url=again))
