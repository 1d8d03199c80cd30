"""``xcp-provision tokens``: API tokens for the admin API and the dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.cli.admin import emit, inventory_options, make_table, session_for
from pxe.store import tokens as store
from pxe.store.views import token_view


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens."""


@tokens.command("create")
@click.argument("name")
@inventory_options
def create(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Create a token NAME; the token is printed once, as the last line."""
    with session_for(config_file, data_dir) as session:
        token = store.create_api_token(session, name)
    if as_json:
        emit({"name": name, "token": token}, True, str)
        return
    click.echo(f"API token {name!r} created; it is shown only now:", err=True)
    click.echo(token)


@tokens.command("list")
@inventory_options
def list_(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List token names (never the tokens)."""
    with session_for(config_file, data_dir) as session:
        rows = [token_view(t) for t in store.list_api_tokens(session)]
    emit(
        rows,
        as_json,
        lambda: make_table(
            "API tokens",
            ["name", "created", "last used"],
            [(r["name"], r["created_at"], r["last_used_at"]) for r in rows],
        ),
    )


@tokens.command("revoke")
@click.argument("name")
@inventory_options
def revoke(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Revoke the token NAME."""
    with session_for(config_file, data_dir) as session:
        store.revoke_api_token(session, name)
    emit({"revoked": name}, as_json, lambda: f"revoked {name}")
