"""``xcp-provision pools``: the pools hosts join at first boot."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group

from pxe.cli.admin import emit, make_table
from pxe.cli.backend import Backend, backend_options


@click.group()
def pools() -> None:
    """List, create and show pools: master, members, and the hosts refused with reasons."""


@pools.command("list")
@backend_options
def list_pools(backend: Backend, as_json: bool) -> None:
    """Every pool with its master and how many hosts joined or were refused."""
    rows = backend.list_pools()
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
@backend_options
def create(*, name: str, force: bool, master: str | None, backend: Backend, as_json: bool) -> None:
    """Create pool NAME; its master is --master, else the first host admitted."""
    row = backend.create_pool(name, force=force, master=master)
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
@backend_options
def show(name: str, backend: Backend, as_json: bool) -> None:
    """Pool NAME: its master, members with states, refused hosts with their reasons."""
    row = backend.show_pool(name)
    emit(row, as_json, lambda: _show_tables(row))
