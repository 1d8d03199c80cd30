"""``xcp-provision tokens``: API tokens for the admin API and the dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from pxe.cli.admin import emit, inventory_options, make_table, session_for
from pxe.cli.audited import audited_session
from pxe.store import tokens as store
from pxe.store.views import token_view


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(store.ROLES),
    default=store.ADMIN,
    show_default=True,
    help="admin changes things; viewer only reads (API GET/HEAD, the dashboard without actions).",
)
@inventory_options
def create(
    name: str, role: str, config_file: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Create a token NAME; the token is printed once, as the last line."""
    with audited_session(config_file, data_dir, "tokens.create", name, fields=["role"]) as work:
        token = store.create_api_token(work.session, name, role)
    if as_json:
        emit({"name": name, "role": role, "token": token}, True, str)
        return
    click.echo(f"API token {name!r} created; it is shown only now:", err=True)
    click.echo(token)


@tokens.command("list")
@inventory_options
def list_(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List token names (never the tokens)."""
    with session_for(config_file, data_dir) as session:
        rows = [{**token_view(t), "role": t.role} for t in store.list_api_tokens(session)]
    emit(
        rows,
        as_json,
        lambda: make_table(
            "API tokens",
            ["name", "role", "created", "last used"],
            [(r["name"], r["role"], r["created_at"], r["last_used_at"]) for r in rows],
        ),
    )


@tokens.command("revoke")
@click.argument("name")
@inventory_options
def revoke(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Revoke the token NAME."""
    with audited_session(config_file, data_dir, "tokens.revoke", name) as work:
        store.revoke_api_token(work.session, name)
    emit({"revoked": name}, as_json, lambda: f"revoked {name}")
