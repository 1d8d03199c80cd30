"""``xcp-provision events HOST``: a host's history, newest last."""

from __future__ import annotations

import click

from pxe.cli.admin import emit, make_table
from pxe.cli.backend import Backend, backend_options


@click.command()
@click.argument("host")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@backend_options
def events(host: str, limit: int, backend: Backend, as_json: bool) -> None:
    """Show the events of HOST (id, MAC or host name)."""
    rows = backend.host_events(host, limit=limit)
    emit(
        rows,
        as_json,
        lambda: make_table(
            f"events of {host}",
            ["time", "kind", "step", "%", "message"],
            [(r["time"], r["kind"], r["step"], r["percent"], r["message"]) for r in rows],
        ),
    )
