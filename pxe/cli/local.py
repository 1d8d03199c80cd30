"""The admin commands on the server itself (``--data-dir``): straight to the inventory database,
each change in one audited transaction (pxe.cli.audited).

Every operation returns the view the REST API answers with (pxe.store.views), so the commands
render one shape whichever backend they ran on (pxe.cli.remote is the other one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from pxe.bmc import service as bmc_service
from pxe.bmc.driver import PowerAction
from pxe.cli.admin import session_for, settings_for
from pxe.cli.audited import audited_session, cli_actor
from pxe.db.session import open_database
from pxe.pools_view import pool_detail
from pxe.registration import on_host_removed
from pxe.store import hosts as hosts_store
from pxe.store import pools as pools_store
from pxe.store import profiles as profiles_store
from pxe.store import rolls as rolls_store
from pxe.store import selectors
from pxe.store.audit import audit_view, hidden_values, list_audit, parse_since
from pxe.store.bmc import BmcSettings
from pxe.store.errors import ConflictError, StoreError
from pxe.store.events import list_events
from pxe.store.views import event_view, host_view, pool_view, profile_view, selector_view


class LocalBackend:
    """The admin operations on a data directory (and its database) on this machine."""

    remote = False

    def __init__(self, config_file: Path | None, data_dir: Path | None) -> None:
        self.config_file = config_file
        self.data_dir = data_dir

    def _read(self) -> Any:
        return session_for(self.config_file, self.data_dir)

    def _write(self, action: str, target: str = "", **audit: Any) -> Any:
        return audited_session(self.config_file, self.data_dir, action, target, **audit)

    # hosts

    def list_hosts(
        self, *, state: str | None, pool: str | None, profile: str | None
    ) -> list[dict[str, Any]]:
        with self._read() as session:
            found = hosts_store.list_hosts(session, state=state, pool=pool, profile=profile)
            return [host_view(h) for h in found]

    def add_host(
        self,
        *,
        macs: tuple[str, ...],
        hostname: str | None,
        uuid: str | None,
        serial: str | None,
        profile: str | None,
        pool: str | None,
    ) -> dict[str, Any]:
        given = {"macs": macs, "hostname": hostname, "uuid": uuid, "serial": serial,
                 "profile": profile, "pool": pool}  # fmt: skip
        target = hostname or next(iter(macs), None) or uuid or serial or ""
        fields = [k for k, v in given.items() if v]
        with self._write("hosts.add", target, fields=fields) as work:
            host = hosts_store.add_host(work.session, **{**given, "macs": list(macs)})
            work.session.flush()
            work.target = host.hostname or str(host.id)
            return host_view(host)

    def show_host(self, ref: str, *, events: int) -> dict[str, Any]:
        with self._read() as session:
            host = hosts_store.get_host(session, ref)
            return {
                **host_view(host),
                "failure_log": host.failure_log,
                "events": [event_view(e) for e in list_events(session, host=host, limit=events)],
            }

    def edit_host(self, ref: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._write("hosts.edit", ref, fields=changes) as work:
            host = hosts_store.get_host(work.session, ref)
            return host_view(hosts_store.update_host(work.session, host, **changes))

    def reinstall_host(self, ref: str, *, power: bool) -> dict[str, Any]:
        if power:
            settings = settings_for(self.config_file, self.data_dir)
            with self._write("hosts.reinstall", ref, fields=["power"]):
                return bmc_service.reinstall_with_power(
                    open_database(settings), settings, ref, cli_actor()
                )
        with self._write("hosts.reinstall", ref) as work:
            host = hosts_store.get_host(work.session, ref)
            return host_view(hosts_store.reinstall_host(work.session, host))

    def remove_host(self, ref: str) -> int:
        with self._write("hosts.remove", ref) as work:
            host = hosts_store.get_host(work.session, ref)
            host_id = host.id
            # Its DNS records; problems are logged, never fatal.
            on_host_removed(settings_for(self.config_file, self.data_dir), host)
            hosts_store.remove_host(work.session, host)
        return host_id

    def host_events(self, ref: str, *, limit: int) -> list[dict[str, Any]]:
        with self._read() as session:
            host = hosts_store.get_host(session, ref)
            return [event_view(e) for e in list_events(session, host=host, limit=limit)]

    def set_bmc(self, ref: str, given: BmcSettings) -> dict[str, Any]:
        settings = settings_for(self.config_file, self.data_dir)
        fields = ["driver", "address", "username"]
        fields += [name for name, value in (
            ("port", given.port), ("password", given.password),
            ("system_path", given.system_path), ("verify_tls", not given.verify_tls)) if value
        ]  # fmt: skip
        with self._write("hosts.bmc", ref, fields=fields) as work:
            host = hosts_store.get_host(work.session, ref)
            return bmc_service.set_bmc(work.session, settings, host, given, cli_actor())

    def remove_bmc(self, ref: str) -> None:
        with self._write("hosts.bmc.remove", ref) as work:
            host = hosts_store.get_host(work.session, ref)
            if not bmc_service.remove_bmc(work.session, host, cli_actor()):
                raise bmc_service.NoBmcError(host)

    def power_status(self, ref: str, *, fresh: bool) -> dict[str, Any]:
        settings = settings_for(self.config_file, self.data_dir)
        try:
            reading = bmc_service.power_status(open_database(settings), settings, ref, fresh=fresh)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        return {"host": ref, **reading.view()}

    def power_action(self, ref: str, action: str) -> dict[str, Any]:
        settings = settings_for(self.config_file, self.data_dir)
        with self._write(f"hosts.power.{action}", ref, fields=["action"]):
            return bmc_service.power_action(
                open_database(settings), settings, ref, PowerAction(action), cli_actor()
            )

    # rolling reinstalls

    def start_roll(self, request: rolls_store.RollRequest) -> dict[str, Any]:
        fields = [name for name, value in (
            ("pool", request.pool), ("profile", request.profile), ("hosts", request.hosts),
            ("power", request.power), ("max_parallel", True),
            ("continue_on_failure", request.continue_on_failure)) if value]  # fmt: skip
        target = request.pool or request.profile or ",".join(request.hosts)
        with self._write("reinstalls.create", target, fields=fields) as work:
            roll = rolls_store.create_roll(work.session, request, cli_actor())
            work.session.flush()
            work.target = f"roll {roll.id}"
            return rolls_store.roll_view(work.session, roll)

    def list_rolls(self, *, status: str | None) -> list[dict[str, Any]]:
        with self._read() as session:
            found = rolls_store.list_rolls(session, status=status)
            return [rolls_store.roll_view(session, r, steps=False) for r in found]

    def show_roll(self, roll_id: int) -> dict[str, Any]:
        with self._read() as session:
            return rolls_store.roll_view(session, rolls_store.get_roll(session, roll_id))

    # profiles

    def list_profiles(self) -> list[dict[str, Any]]:
        with self._read() as session:
            return [profile_view(p) for p in profiles_store.list_profiles(session)]

    def show_profile(self, name: str) -> dict[str, Any]:
        with self._read() as session:
            profile = profiles_store.get_profile(session, name)
            effective = asdict(profiles_store.resolve_profile(profile))
            return {**profile_view(profile), "effective": effective}

    def create_profile(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._write("profiles.create", name, fields=fields,
                         hide=hidden_values(fields)) as work:  # fmt: skip
            return profile_view(profiles_store.create_profile(work.session, name, **fields))

    def edit_profile(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._write("profiles.edit", name, fields=fields,
                         hide=hidden_values(fields)) as work:  # fmt: skip
            profile = profiles_store.get_profile(work.session, name)
            return profile_view(profiles_store.update_profile(work.session, profile, **fields))

    def delete_profile(self, name: str) -> None:
        with self._write("profiles.delete", name) as work:
            profile = profiles_store.get_profile(work.session, name)
            profiles_store.delete_profile(work.session, profile)

    def add_selector(self, name: str, field: str, pattern: str) -> dict[str, Any]:
        with self._write("profiles.select", name, fields=["field", "pattern"]) as work:
            profile = profiles_store.get_profile(work.session, name)
            return selector_view(selectors.add_selector(work.session, profile, field, pattern))

    # pools

    def list_pools(self) -> list[dict[str, Any]]:
        with self._read() as session:
            return [pool_detail(session, pool) for pool in pools_store.list_pools(session)]

    def create_pool(self, name: str, *, force: bool, master: str | None) -> dict[str, Any]:
        fields = [k for k, v in (("force", force), ("master", master)) if v]
        with self._write("pools.create", name, fields=fields) as work:
            session = work.session
            pool = pools_store.create_pool(session, name, force=force)
            if master is not None:
                host = hosts_store.get_host(session, master)
                if host.pool is not None:
                    raise ConflictError(f"host {master} is already in pool {host.pool.name}")
                host.pool = pool
                pool.master = host
                session.flush()
            return pool_view(pool)

    def show_pool(self, name: str) -> dict[str, Any]:
        with self._read() as session:
            return pool_detail(session, pools_store.get_pool(session, name))

    # audit

    def audit(self, *, since: str | None, limit: int) -> list[dict[str, Any]]:
        after = parse_since(since) if since else None
        with self._read() as session:
            return [audit_view(r) for r in list_audit(session, since=after, limit=limit)]
