"""Inventory rows as plain JSON-ready dicts, shared by the REST API and the CLI's --json."""

from __future__ import annotations

from typing import Any

from pxe.db.models import ApiToken, Bmc, Event, Host, HostHealth, Pool, Profile, Selector
from pxe.store.bmc import bmc_of
from pxe.store.health import health_of
from pxe.store.lifecycle import State


def _time(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def host_view(host: Host) -> dict[str, Any]:
    return {
        "id": host.id,
        "hostname": host.hostname,
        "macs": host.mac_list,
        "uuid": host.smbios_uuid,
        "serial": host.serial,
        "arch": host.arch,
        "state": host.state,
        "state_reason": host.state_reason,
        "profile": host.profile.name if host.profile else None,
        "pool": host.pool.name if host.pool else None,
        "facts": host.facts or {},
        "refusal_reasons": host.refusal_reasons or [],
        "token_spent": host.token_spent,
        # The install cycle (pxe.boot.decide): attempts since the last reinstall, the address
        # its token is bound to, whether it waits for an install slot.
        "install_attempts": host.install_attempts or 0,
        "install_address": host.token_bound_addr,
        "queued": is_queued(host),
        "bmc": bmc_view(bmc_of(host)),  # never its password (pxe.bmc)
        "health": health_view(health_of(host)),  # never its report token (pxe.health)
        "created_at": _time(host.created_at),
        "updated_at": _time(host.updated_at),
    }


def is_queued(host: Host) -> bool:
    """A ready host waiting for one of the ``max_concurrent_installs`` slots."""
    return host.state == State.READY and host.queued_at is not None


def event_view(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "host_id": event.host_id,
        "time": _time(event.time),
        "kind": event.kind,
        "step": event.step,
        "percent": event.percent,
        "message": event.message,
    }


def selector_view(selector: Selector) -> dict[str, Any]:
    return {
        "id": selector.id,
        "profile": selector.profile.name,
        "field": selector.field,
        "pattern": selector.pattern,
    }


def profile_view(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "name": profile.name,
        "parent": profile.parent.name if profile.parent else None,
        "release": profile.release,
        "template": profile.template,
        "variables": profile.variables or {},
        "kernel_args": profile.kernel_args,
        "disk_rule": profile.disk_rule or {},
        "pool": profile.pool.name if profile.pool else None,
        "selectors": [selector_view(s) for s in profile.selectors],
        "created_at": _time(profile.created_at),
        "updated_at": _time(profile.updated_at),
    }


def pool_view(pool: Pool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        "master": pool.master.hostname or pool.master.id if pool.master else None,
        "force": pool.force,
        "created_at": _time(pool.created_at),
    }


def token_view(token: ApiToken) -> dict[str, Any]:
    return {
        "name": token.name,
        "created_at": _time(token.created_at),
        "last_used_at": _time(token.last_used_at),
    }


def bmc_view(bmc: Bmc | None) -> dict[str, Any] | None:
    """A host's BMC without its password, which no view ever shows."""
    if bmc is None:
        return None
    return {
        "driver": bmc.driver,
        "address": bmc.address,
        "port": bmc.port,
        "username": bmc.username,
        "system_path": bmc.system_path or None,
        "verify_tls": bmc.verify_tls,
        "updated_at": _time(bmc.updated_at),
    }


def health_view(health: HostHealth | None) -> dict[str, Any] | None:
    """What the host last reported of its health; None before its first report."""
    if health is None or health.reported_at is None:
        return None
    return {
        "raid_state": health.raid_state,
        "raid": list(health.raid or []),
        "reported_at": _time(health.reported_at),
    }
