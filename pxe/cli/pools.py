"""``xcp-provision pools``: the pools hosts join at first boot, on the local data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Group

from pxe.cli.admin import emit, inventory_options, make_table, session_for
from pxe.cli.audited import audited_session
from pxe.pools_view import pool_detail
from pxe.store import pools as store
from pxe.store.errors import ConflictError
from pxe.store.hosts import get_host
from pxe.store.views import pool_view


@click.group()
def pools() -> None:
    """List, create and show pools: master, members, and the hosts refused with reasons."""


@pools.command("list")
@inventory_options
def list_pools(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Every pool with its master and how many hosts joined or were refused."""
    with session_for(config_file, data_dir) as session:
        rows = [pool_detail(session, pool) for pool in store.list_pools(session)]
    data = {"pools": rows}
    emit(
        data,
        as_json,
        lambda: make_table(
            f"{len(rows)} pool(s)",
            ["name", "master", "master address", "members", "refused", "force"],
            [
                (
                    r["name"],
                    r["master"],
                    r["master_address"],
                    len(r["members"]),
                    len(r["refused"]),
                    "yes" if r["force"] else "no",
                )
                for r in rows
            ],
        ),
    )


@pools.command("create")
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Admit members whose CPU vendor differs from the master's (as xe pool-join force=true).",
)
@click.option(
    "--master",
    default=None,
    help="Host (id, MAC or name) to be the master; members wait for it to register.",
)
@inventory_options
def create(
    *,
    name: str,
    force: bool,
    master: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Create pool NAME; its master is --master, else the first host admitted."""
    fields = [k for k, v in (("force", force), ("master", master)) if v]
    with audited_session(config_file, data_dir, "pools.create", name, fields=fields) as work:
        session = work.session
        pool = store.create_pool(session, name, force=force)
        if master is not None:
            host = get_host(session, master)
            if host.pool is not None:
                raise ConflictError(f"host {master} is already in pool {host.pool.name}")
            host.pool = pool
            pool.master = host
            session.flush()
        row = pool_view(pool)
    emit(row, as_json, lambda: f"created pool {row['name']}")


def _show_tables(row: dict[str, Any]) -> Group:
    summary = make_table(
        f"pool {row['name']}",
        ["field", "value"],
        [
            ("master", row["master"]),
            ("master address", row["master_address"]),
            ("force", "yes" if row["force"] else "no"),
            ("created", row["created_at"]),
        ],
    )
    members = make_table(
        f"{len(row['members'])} member(s)",
        ["id", "hostname", "role", "state", "address"],
        [(m["id"], m["hostname"], m["role"], m["state"], m["address"]) for m in row["members"]],
    )
    parts: list[Any] = [summary, members]
    if row["refused"]:
        parts.append(
            make_table(
                f"{len(row['refused'])} refused",
                ["id", "hostname", "reasons"],
                [(r["id"], r["hostname"], "\n".join(r["reasons"])) for r in row["refused"]],
            )
        )
    if row["pending"]:
        parts.append(
            make_table(
                f"{len(row['pending'])} not registered yet",
                ["id", "hostname", "state"],
                [(p["id"], p["hostname"], p["state"]) for p in row["pending"]],
            )
        )
    return Group(*parts)


@pools.command("show")
@click.argument("name")
@inventory_options
def show(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Pool NAME: its master, members with states, refused hosts with their reasons."""
    with session_for(config_file, data_dir) as session:
        row = pool_detail(session, store.get_pool(session, name))
    emit(row, as_json, lambda: _show_tables(row))
