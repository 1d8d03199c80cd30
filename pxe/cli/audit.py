"""``xcp-provision audit``: who changed what, through the API, the dashboard or this CLI."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.cli.admin import emit, inventory_options, make_table, session_for
from pxe.store.audit import audit_view, list_audit, parse_since
from pxe.store.errors import StoreError


@click.command()
@click.option(
    "--since", default=None, help="Only actions since this ISO 8601 time or span (30m, 1h, 2d)."
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@inventory_options
def audit(
    *,
    since: str | None,
    limit: int,
    config_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """The audit log, newest first: actor, action, target, source address, time, result."""
    try:
        after = parse_since(since) if since else None
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with session_for(config_file, data_dir) as session:
        rows = [audit_view(r) for r in list_audit(session, since=after, limit=limit)]
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
