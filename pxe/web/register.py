"""``POST /api/v1/register``: the first boot of an installed host calls home here.

The wire protocol the first-boot agent (dom0/firstboot/agent.py) is written against; the rules
(tokens, pools, DNS) live in :mod:`pxe.registration`. Statuses: 200 with the answer (in the pool,
or registered with the reasons it was refused); 400 naming the bad field; 401 without a token or
with one no host holds; 403 for another host's token, one spent by an earlier join, or a
registration that does not match the host (MAC, SMBIOS UUID, serial, the address its install
used unless it holds the host's registration key: a security event, see
:mod:`pxe.registration`); 409 for a
host that never finished installing; 503 + Retry-After while the pool's named master has not
registered, or while the inventory database cannot be reached (restarting, a lost connection:
:mod:`pxe.web.errors`; the registration is then not recorded, or recorded whole, which a retry
within :data:`pxe.registration.REPLAY_WINDOW` gets answered again). The agent retries 5xx, so
it joins once the master or the database is up.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from common import wire
from pxe.dns.errors import DnsSettingsError
from pxe.dns.settings import DnsSettings
from pxe.host_report import ReportError
from pxe.registration import IdentityMismatchError, dns_settings, register
from pxe.web.auth import bearer_token
from pxe.web.context import client_address, settings, state
from pxe.web.metrics import count_security_event

log = logging.getLogger(__name__)

bp = Blueprint("register", __name__)


def _dns() -> DnsSettings | None:
    """DNS settings, or None; a misconfiguration is logged, it does not refuse hosts."""
    try:
        return dns_settings(settings())
    except DnsSettingsError as exc:
        log.error("DNS records not updated: %s", exc)
        return None


@bp.errorhandler(ReportError)
def _bad_field(exc: ReportError) -> tuple[Response, int]:
    return jsonify(error=str(exc), field=exc.field), 400


@bp.post(wire.REGISTER)
def register_host() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    body = request.get_json(silent=True) if request.get_data(cache=True) else None
    try:
        answer = register(
            state().database, bearer_token(), body, dns=_dns(), source=client_address()
        )
    except IdentityMismatchError as exc:
        count_security_event(exc.check)
        raise
    if answer.retry_after is not None:
        headers = {"Retry-After": str(answer.retry_after)}
        return jsonify(error=" ".join(answer.reasons), **answer.to_json()), 503, headers
    return jsonify(answer.to_json()), 200
