"""``xcp-provision hosts``: the inventory of machines, on the local data directory."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.cli.admin import emit, inventory_options, make_table, session_for, settings_for
from pxe.registration import on_host_removed
from pxe.store import hosts as store
from pxe.store.errors import StoreError
from pxe.store.events import list_events
from pxe.store.lifecycle import parse_state
from pxe.store.views import event_view, host_view


@click.group()
def hosts() -> None:
    """Add, list, show, edit, reinstall and remove hosts."""


def _host_table(rows: list[dict]) -> object:
    return make_table(
        f"{len(rows)} host(s)",
        ["id", "hostname", "MACs", "state", "profile", "pool", "reason"],
        [
            (
                r["id"],
                r["hostname"],
                " ".join(r["macs"]),
                r["state"],
                r["profile"],
                r["pool"],
                r["state_reason"],
            )
            for r in rows
        ],
    )


@hosts.command("add")
@click.option("--mac", "macs", multiple=True, help="A MAC address (repeat for several NICs).")
@click.option("--hostname", default=None)
@click.option("--uuid", default=None, help="SMBIOS UUID.")
@click.option("--serial", default=None, help="Serial number.")
@click.option("--profile", default=None, help="Profile name; the host is ready to install.")
@click.option("--pool", default=None, help="Pool name.")
@inventory_options
def add(
    *,
    macs: tuple[str, ...],
    hostname: str | None,
    uuid: str | None,
    serial: str | None,
    profile: str | None,
    pool: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Add a host known by MAC, UUID or serial."""
    with session_for(config_file, data_dir) as session:
        host = store.add_host(
            session,
            macs=list(macs),
            hostname=hostname,
            uuid=uuid,
            serial=serial,
            profile=profile,
            pool=pool,
        )
        row = host_view(host)
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("list")
@click.option("--state", default=None, help="Only hosts in this state.")
@click.option("--pool", default=None, help="Only hosts of this pool.")
@click.option("--profile", default=None, help="Only hosts with this profile.")
@inventory_options
def list_(
    *,
    state: str | None,
    pool: str | None,
    profile: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """List hosts."""
    try:
        if state:
            parse_state(state)
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from exc
    with session_for(config_file, data_dir) as session:
        rows = [
            host_view(h) for h in store.list_hosts(session, state=state, pool=pool, profile=profile)
        ]
    emit(rows, as_json, lambda: _host_table(rows))


@hosts.command("show")
@click.argument("ref")
@inventory_options
def show(ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Show host REF (id, MAC or host name) with its latest events."""
    with session_for(config_file, data_dir) as session:
        host = store.get_host(session, ref)
        row = {
            **host_view(host),
            "failure_log": host.failure_log,
            "events": [event_view(e) for e in list_events(session, host=host, limit=20)],
        }

    def table() -> object:
        fields = [(k, v) for k, v in row.items() if k not in ("events", "failure_log")]
        fields += [
            (f"event {e['time']}", f"{e['kind']} {e['step']} {e['percent'] or ''} {e['message']}")
            for e in row["events"]
        ]
        return make_table(f"host {ref}", ["field", "value"], fields)

    emit(row, as_json, table)


@hosts.command("edit")
@click.argument("ref")
@click.option("--hostname", default=None)
@click.option(
    "--profile", default=None, help="Profile name ('' removes it); a discovered host becomes ready."
)
@click.option("--pool", default=None, help="Pool name ('' removes it).")
@inventory_options
def edit(
    *,
    ref: str,
    hostname: str | None,
    profile: str | None,
    pool: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Change host REF: name it, assign a profile or a pool."""
    changes = {
        key: value
        for key, value in (("hostname", hostname), ("profile", profile), ("pool", pool))
        if value is not None
    }
    if not changes:
        raise click.UsageError("nothing to change: give --hostname, --profile or --pool")
    with session_for(config_file, data_dir) as session:
        row = host_view(store.update_host(session, store.get_host(session, ref), **changes))
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("reinstall")
@click.argument("ref")
@inventory_options
def reinstall(ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Put host REF back to ready: its next PXE boot installs it again."""
    with session_for(config_file, data_dir) as session:
        row = host_view(store.reinstall_host(session, store.get_host(session, ref)))
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("remove")
@click.argument("ref")
@inventory_options
def remove(ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Remove host REF and its events."""
    with session_for(config_file, data_dir) as session:
        host = store.get_host(session, ref)
        host_id = host.id
        on_host_removed(settings_for(config_file, data_dir), host)  # DNS; problems are logged
        store.remove_host(session, host)
    emit({"removed": host_id}, as_json, lambda: f"removed host {host_id}")
