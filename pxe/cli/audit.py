"""``xcp-provision audit``: who changed what, through the API, the dashboard or this CLI."""

from __future__ import annotations

import click

from pxe.cli.admin import emit, make_table
from pxe.cli.backend import Backend, backend_options
from pxe.store.audit import parse_since
from pxe.store.errors import StoreError


@click.command()
@click.option(
    "--since", default=None, help="Only actions since this ISO 8601 time or span (30m, 1h, 2d)."
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@backend_options
def audit(*, since: str | None, limit: int, backend: Backend, as_json: bool) -> None:
    """The audit log, newest first: actor, action, target, source address, time, result."""
    try:
        if since:
            parse_since(since)
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    rows = backend.audit(since=since, limit=limit)
    emit(
        rows,
        as_json,
        lambda: make_table(
            f"{len(rows)} audit row(s)",
            ["time", "actor", "action", "target", "source", "result", "fields"],
            [
                (
                    r["time"],
                    r["actor"],
                    r["action"],
                    r["target"],
                    r["source"],
                    r["result"],
                    " ".join(r["fields"]),
                )
                for r in rows
            ],
        ),
    )
