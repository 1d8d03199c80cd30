"""``xcp-provision hosts``: the inventory of machines, on the local data directory."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.bmc import service as bmc_service
from pxe.bmc.driver import PowerAction
from pxe.cli.admin import emit, inventory_options, make_table, session_for, settings_for
from pxe.cli.audited import audited_session, cli_actor
from pxe.db.session import open_database
from pxe.registration import on_host_removed
from pxe.store import hosts as store
from pxe.store.bmc import BmcSettings
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
    given = {"macs": macs, "hostname": hostname, "uuid": uuid, "serial": serial,
             "profile": profile, "pool": pool}  # fmt: skip
    target = hostname or next(iter(macs), None) or uuid or serial or ""
    fields = [k for k, v in given.items() if v]
    with audited_session(config_file, data_dir, "hosts.add", target, fields=fields) as work:
        host = store.add_host(
            work.session,
            macs=list(macs),
            hostname=hostname,
            uuid=uuid,
            serial=serial,
            profile=profile,
            pool=pool,
        )
        work.session.flush()
        work.target = host.hostname or str(host.id)
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
    with audited_session(config_file, data_dir, "hosts.edit", ref, fields=changes) as work:
        session = work.session
        row = host_view(store.update_host(session, store.get_host(session, ref), **changes))
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("reinstall")
@click.argument("ref")
@click.option(
    "--power",
    is_flag=True,
    help="Also through its BMC: next boot from the network (once), then a power cycle (or on).",
)
@inventory_options
def reinstall(
    ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool, power: bool = False
) -> None:
    """Put host REF back to ready: its next PXE boot installs it again."""
    if power:
        _reinstall_with_power(ref, config_file, data_dir, as_json)
        return
    with audited_session(config_file, data_dir, "hosts.reinstall", ref) as work:
        session = work.session
        row = host_view(store.reinstall_host(session, store.get_host(session, ref)))
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("remove")
@click.argument("ref")
@inventory_options
def remove(ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Remove host REF and its events."""
    with audited_session(config_file, data_dir, "hosts.remove", ref) as work:
        session = work.session
        host = store.get_host(session, ref)
        host_id = host.id
        on_host_removed(settings_for(config_file, data_dir), host)  # DNS; problems are logged
        store.remove_host(session, host)
    emit({"removed": host_id}, as_json, lambda: f"removed host {host_id}")


def _reinstall_with_power(
    ref: str, config_file: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    settings = settings_for(config_file, data_dir)
    with audited_session(config_file, data_dir, "hosts.reinstall", ref, fields=["power"]):
        row = bmc_service.reinstall_with_power(open_database(settings), settings, ref, cli_actor())
    emit(row, as_json, lambda: _host_table([row]))


def _read_password(path: str) -> str:
    """The first line of the file (``-``: standard input), without its line end."""
    try:
        if path == "-":
            text = click.get_text_stream("stdin").read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--password-file"
        ) from exc
    password = text.splitlines()[0] if text else ""
    if not password:
        raise click.BadParameter(f"{path} holds no password", param_hint="--password-file")
    return password


@hosts.command("bmc")
@click.argument("ref")
@click.option("--driver", type=click.Choice(["ipmi", "redfish"]), default=None)
@click.option("--address", default=None, help="Host name or IP (Redfish: also an https:// URL).")
@click.option("--port", type=int, default=None, help="Default 623 (IPMI), 443 (Redfish).")
@click.option("--username", default=None)
@click.option(
    "--password-file",
    default=None,
    help="File whose first line is the password ('-': standard input); kept encrypted. "
    "Needed the first time; leave out to keep the stored one.",
)
@click.option("--system-path", default="", help="Redfish: /redfish/v1/Systems/<id>.")
@click.option("--no-verify-tls", is_flag=True, help="Redfish: accept any TLS certificate.")
@click.option("--remove", is_flag=True, help="Remove the host's BMC.")
@inventory_options
def bmc(
    *,
    ref: str,
    driver: str | None,
    address: str | None,
    port: int | None,
    username: str | None,
    password_file: str | None,
    system_path: str,
    no_verify_tls: bool,
    remove: bool,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Set (or --remove) the BMC of host REF, through which it is powered."""
    settings = settings_for(config_file, data_dir)
    if remove:
        with audited_session(config_file, data_dir, "hosts.bmc.remove", ref) as work:
            host = store.get_host(work.session, ref)
            if not bmc_service.remove_bmc(work.session, host, cli_actor()):
                raise bmc_service.NoBmcError(host)
        emit({"removed": ref}, as_json, lambda: f"removed the BMC of host {ref}")
        return
    missing = [
        f"--{name}"
        for name, value in (("driver", driver), ("address", address), ("username", username))
        if not value
    ]
    if missing:
        raise click.UsageError(f"give {', '.join(missing)} (or --remove)")
    assert driver is not None and address is not None and username is not None
    given = BmcSettings(
        driver=driver,
        address=address,
        username=username,
        password=_read_password(password_file) if password_file else None,
        port=port,
        system_path=system_path,
        verify_tls=not no_verify_tls,
    )
    fields = ["driver", "address", "username"]
    fields += [name for name, value in (("port", port), ("password", password_file),
               ("system_path", system_path), ("verify_tls", no_verify_tls)) if value]  # fmt: skip
    with audited_session(config_file, data_dir, "hosts.bmc", ref, fields=fields) as work:
        host = store.get_host(work.session, ref)
        row = bmc_service.set_bmc(work.session, settings, host, given, cli_actor())
    emit(row, as_json, lambda: make_table(f"BMC of host {ref}", ["field", "value"], row.items()))


@hosts.command("power")
@click.argument("ref")
@click.argument("action", type=click.Choice(["status", *(a.value for a in PowerAction)]))
@click.option("--fresh", is_flag=True, help="status: ask the BMC now, not a recent reading.")
@inventory_options
def power(
    *,
    ref: str,
    action: str,
    fresh: bool,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Power host REF on, off or cycle it through its BMC, or show its power status."""
    settings = settings_for(config_file, data_dir)
    database = open_database(settings)
    if action == "status":
        try:
            reading = bmc_service.power_status(database, settings, ref, fresh=fresh)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        row = {"host": ref, **reading.view()}
        emit(row, as_json, lambda: f"host {ref}: power {reading.state.value}")
        return
    with audited_session(config_file, data_dir, f"hosts.power.{action}", ref, fields=["action"]):
        row = bmc_service.power_action(database, settings, ref, PowerAction(action), cli_actor())
    emit(row, as_json, lambda: f"host {ref}: power {action} acknowledged by its BMC")
