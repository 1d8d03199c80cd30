"""``xcp-provision hosts``: the inventory of machines, their BMCs and their power."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.bmc.driver import PowerAction
from pxe.cli.admin import emit, make_table
from pxe.cli.backend import Backend, backend_options
from pxe.cli.reinstalls import announce_roll
from pxe.health import summary
from pxe.store import rolls as store_rolls
from pxe.store.bmc import BmcSettings
from pxe.store.errors import StoreError
from pxe.store.lifecycle import parse_state


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
@backend_options
def add(
    *,
    macs: tuple[str, ...],
    hostname: str | None,
    uuid: str | None,
    serial: str | None,
    profile: str | None,
    pool: str | None,
    backend: Backend,
    as_json: bool,
) -> None:
    """Add a host known by MAC, UUID or serial."""
    row = backend.add_host(
        macs=macs, hostname=hostname, uuid=uuid, serial=serial, profile=profile, pool=pool
    )
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("list")
@click.option("--state", default=None, help="Only hosts in this state.")
@click.option("--pool", default=None, help="Only hosts of this pool.")
@click.option("--profile", default=None, help="Only hosts with this profile.")
@backend_options
def list_(
    *, state: str | None, pool: str | None, profile: str | None, backend: Backend, as_json: bool
) -> None:
    """List hosts."""
    try:
        if state:
            parse_state(state)
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from exc
    rows = backend.list_hosts(state=state, pool=pool, profile=profile)
    emit(rows, as_json, lambda: _host_table(rows))


@hosts.command("show")
@click.argument("ref")
@backend_options
def show(ref: str, backend: Backend, as_json: bool) -> None:
    """Show host REF (id, MAC or host name) with its latest events."""
    row = backend.show_host(ref, events=20)

    def table() -> object:
        fields = [(k, v) for k, v in row.items() if k not in ("events", "failure_log", "health")]
        fields.append(("software RAID", _health_line(row.get("health"))))
        fields += [
            (f"event {e['time']}", f"{e['kind']} {e['step']} {e['percent'] or ''} {e['message']}")
            for e in row["events"]
        ]
        return make_table(f"host {ref}", ["field", "value"], fields)

    emit(row, as_json, table)


def _health_line(health: dict | None) -> str:
    """What the host last reported of its software RAID, in one line, with when."""
    if not health:
        return "not reported yet"
    return f"{summary(health['raid_state'], health['raid'])} (reported {health['reported_at']})"


@hosts.command("edit")
@click.argument("ref")
@click.option("--hostname", default=None)
@click.option(
    "--profile", default=None, help="Profile name ('' removes it); a discovered host becomes ready."
)
@click.option("--pool", default=None, help="Pool name ('' removes it).")
@backend_options
def edit(
    *,
    ref: str,
    hostname: str | None,
    profile: str | None,
    pool: str | None,
    backend: Backend,
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
    row = backend.edit_host(ref, changes)
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("reinstall")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option(
    "--power",
    is_flag=True,
    help="Also through its BMC: next boot from the network (once), then a power cycle (or on).",
)
@click.option("--pool", default=None, help="Roll through this pool's hosts.")
@click.option("--profile", default=None, help="Roll through the hosts of this profile.")
@click.option(
    "--max-parallel",
    type=click.IntRange(1, store_rolls.MAX_PARALLEL),
    default=None,
    help="A rolling reinstall: this many hosts at a time; the next starts when one is "
    "installed or back in its pool (default 1 with --pool or --profile).",
)
@click.option("--continue-on-failure", is_flag=True, help="A roll goes on past a failed host.")
@click.option(
    "--host-timeout",
    type=click.IntRange(60),
    default=store_rolls.DEFAULT_HOST_TIMEOUT,
    show_default=True,
    help="Seconds a rolled host may take to install before it counts as failed.",
)
@backend_options
def reinstall(
    *,
    refs: tuple[str, ...],
    backend: Backend,
    as_json: bool,
    power: bool = False,
    pool: str | None = None,
    profile: str | None = None,
    max_parallel: int | None = None,
    continue_on_failure: bool = False,
    host_timeout: int = store_rolls.DEFAULT_HOST_TIMEOUT,
) -> None:
    """Put host REF back to ready: its next PXE boot installs it again.

    With --pool, --profile, --max-parallel or several hosts, a rolling reinstall: 'serve'
    reinstalls the hosts a few at a time and stops at a failed one (see 'reinstalls show').
    """
    if pool or profile or max_parallel is not None or len(refs) != 1:
        request = store_rolls.RollRequest(
            pool=pool, profile=profile, hosts=refs, power=power,
            max_parallel=max_parallel or 1, continue_on_failure=continue_on_failure,
            host_timeout=host_timeout,
        )  # fmt: skip
        try:
            store_rolls.check_request(request)
        except StoreError as exc:
            raise click.UsageError(str(exc)) from exc
        announce_roll(backend.start_roll(request), as_json)
        return
    [ref] = refs
    row = backend.reinstall_host(ref, power=power)
    emit(row, as_json, lambda: _host_table([row]))


@hosts.command("remove")
@click.argument("ref")
@backend_options
def remove(ref: str, backend: Backend, as_json: bool) -> None:
    """Remove host REF and its events."""
    host_id = backend.remove_host(ref)
    emit({"removed": host_id}, as_json, lambda: f"removed host {host_id}")


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
@click.option(
    "--address",
    default=None,
    help="Host name or IP (Redfish: also an https:// URL); default: the address the host's "
    "installer read from its BMC.",
)
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
@backend_options
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
    backend: Backend,
    as_json: bool,
) -> None:
    """Set (or --remove) the BMC of host REF, through which it is powered."""
    if remove:
        backend.remove_bmc(ref)
        emit({"removed": ref}, as_json, lambda: f"removed the BMC of host {ref}")
        return
    missing = [
        f"--{name}"
        for name, value in (("driver", driver), ("username", username))
        if not value
    ]
    if missing:
        raise click.UsageError(f"give {', '.join(missing)} (or --remove)")
    assert driver is not None and username is not None
    given = BmcSettings(
        driver=driver,
        address=address or "",
        username=username,
        password=_read_password(password_file) if password_file else None,
        port=port,
        system_path=system_path,
        verify_tls=not no_verify_tls,
    )
    row = backend.set_bmc(ref, given)
    emit(row, as_json, lambda: make_table(f"BMC of host {ref}", ["field", "value"], row.items()))


@hosts.command("power")
@click.argument("ref")
@click.argument("action", type=click.Choice(["status", *(a.value for a in PowerAction)]))
@click.option("--fresh", is_flag=True, help="status: ask the BMC now, not a recent reading.")
@backend_options
def power(
    *,
    ref: str,
    action: str,
    fresh: bool,
    backend: Backend,
    as_json: bool,
) -> None:
    """Power host REF on, off or cycle it through its BMC, or show its power status."""
    if action == "status":
        row = backend.power_status(ref, fresh=fresh)
        emit(row, as_json, lambda: f"host {ref}: power {row['power']}")
        return
    row = backend.power_action(ref, action)
    emit(row, as_json, lambda: f"host {ref}: power {action} acknowledged by its BMC")
