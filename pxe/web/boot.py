"""``/boot/ipxe``: the iPXE script for whoever asks, computed now from the inventory."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from common import wire
from pxe.boot.decide import decide_and_record
from pxe.boot.discovery import DiscoveryGate
from pxe.boot.render.ipxe import again_url, chain_script, render_ipxe
from pxe.web.context import EXTENSION, base_url, client_address, settings, state
from pxe.web.metrics import count_discovery_refused

bp = Blueprint("boot", __name__)

# This app's discovery limits (pxe.boot.discovery), refusals counted on its /metrics.
GATE_EXTENSION = "xcp_provision_discovery"


def _setup(setup: BlueprintSetupState) -> None:
    app = setup.app
    app.extensions[GATE_EXTENSION] = DiscoveryGate(
        app.extensions[EXTENSION].settings,
        on_refused=lambda reason: count_discovery_refused(app, reason),
    )


bp.record_once(_setup)


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
        remote_addr=client_address(),
        base_url=base,
        gate=current_app.extensions[GATE_EXTENSION],
    )
    return _script(render_ipxe(plan, again_url=again_url(base, args.items())))
