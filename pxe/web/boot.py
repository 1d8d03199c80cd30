"""``/boot/ipxe``: the iPXE script for whoever asks, computed now from the inventory."""

from __future__ import annotations

from flask import Blueprint, Response, request

from common import wire
from pxe.boot.decide import decide_and_record
from pxe.boot.render.ipxe import again_url, chain_script, render_ipxe
from pxe.web.context import base_url, settings, state

bp = Blueprint("boot", __name__)


def _script(text: str, status: int = 200) -> Response:
    response = Response(text, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(wire.BOOT_IPXE)
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
    return _script(render_ipxe(plan, again_url=again_url(base, args.items())))
