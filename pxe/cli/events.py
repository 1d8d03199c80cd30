"""``xcp-provision events HOST``: a host's history, newest last."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.cli.admin import emit, inventory_options, make_table, session_for
from pxe.store.events import list_events
from pxe.store.hosts import get_host
from pxe.store.views import event_view


@click.command()
@click.argument("host")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@inventory_options
def events(
    host: str, limit: int, config_file: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Show the events of HOST (id, MAC or host name)."""
    with session_for(config_file, data_dir) as session:
        rows = [
            event_view(e) for e in list_events(session, host=get_host(session, host), limit=limit)
        ]
    emit(
        rows,
        as_json,
        lambda: make_table(
            f"events of {host}",
            ["time", "kind", "step", "%", "message"],
            [(r["time"], r["kind"], r["step"], r["percent"], r["message"]) for r in rows],
        ),
    )
