"""``xcp-provision reinstalls``: rolling reinstalls, as ``hosts reinstall --pool`` starts them.

A roll is only recorded here; ``serve`` (its roll driver, pxe.rolls) carries it out, so a roll
asked for while no server runs starts when one does.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group

from pxe.cli.admin import emit, make_table
from pxe.cli.backend import Backend, backend_options


@click.group()
def reinstalls() -> None:
    """Show rolling reinstalls (start one with 'hosts reinstall --pool NAME')."""


def roll_tables(view: dict[str, Any]) -> Group:
    """A roll as the terminal shows it: its settings and counts, its hosts, its history."""
    counts = ", ".join(f"{len(view[k])} {k}" for k in ("done", "running", "waiting", "failed"))
    about = [
        ("status", view["status"]),
        ("hosts", counts),
        ("selection", " ".join(
            part for part in (f"pool {view['pool']}" if view["pool"] else "",
                              f"profile {view['profile']}" if view["profile"] else "") if part
        ) or "listed hosts"),
        ("max parallel", view["max_parallel"]),
        ("power", "through the BMCs" if view["power"] else "no (next network boot)"),
        ("on failure", "continue" if view["continue_on_failure"] else "stop"),
        ("asked by", view["requested_by"]),
        ("created", view["created_at"]),
        ("finished", view["finished_at"] or ""),
        ("message", view["message"]),
    ]  # fmt: skip
    parts: list[Any] = [make_table(f"roll {view['id']}", ["field", "value"], about)]
    parts.append(
        make_table(
            "hosts",
            ["host", "roll", "state", "started", "finished", "message"],
            [
                (
                    h["hostname"],
                    h["status"],
                    h["state"] or "",
                    h["started_at"] or "",
                    h["finished_at"] or "",
                    h["message"],
                )
                for h in view["hosts"]
            ],
        )
    )
    if view.get("steps"):
        parts.append(
            make_table(
                "steps",
                ["time", "step", "message"],
                [(s["time"], s["step"], s["message"]) for s in view["steps"]],
            )
        )
    return Group(*parts)


@reinstalls.command("list")
@click.option("--status", default=None, help="Only rolls in this status (running, done, failed).")
@backend_options
def list_rolls(status: str | None, backend: Backend, as_json: bool) -> None:
    """Rolls, newest first."""
    rows = backend.list_rolls(status=status)
    emit(
        {"reinstalls": rows},
        as_json,
        lambda: make_table(
            f"{len(rows)} roll(s)",
            ["id", "status", "selection", "done", "running", "waiting", "failed", "created"],
            [
                (
                    r["id"],
                    r["status"],
                    r["pool"] or r["profile"] or "hosts",
                    len(r["done"]),
                    len(r["running"]),
                    len(r["waiting"]),
                    len(r["failed"]),
                    r["created_at"],
                )
                for r in rows
            ],
        ),
    )


@reinstalls.command("show")
@click.argument("roll_id", type=int)
@backend_options
def show(roll_id: int, backend: Backend, as_json: bool) -> None:
    """Roll ROLL_ID: hosts done, running, waiting and failed, and every step so far."""
    view = backend.show_roll(roll_id)
    emit(view, as_json, lambda: roll_tables(view))


def announce_roll(view: dict[str, Any], as_json: bool) -> None:
    """A roll just recorded (by ``hosts reinstall``, audited as ``reinstalls.create``)."""
    if as_json:
        emit(view, True, lambda: "")
        return
    click.echo(
        f"roll {view['id']}: {len(view['waiting'])} host(s), {view['max_parallel']} at a time; "
        f"'xcp-provision serve' carries it out (follow it: xcp-provision reinstalls show "
        f"{view['id']})"
    )
