"""What every admin command shares: finding the data directory, a session, and output as a rich
table or as JSON (``--json``) for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from pxe.config import ConfigError, Settings, load_settings
from pxe.db.session import open_database
from pxe.store.errors import StoreError

F = TypeVar("F", bound=Callable[..., Any])


def inventory_options(func: F) -> F:
    """``--config``, ``--data-dir`` and ``--json`` on an admin command."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (default ./data, or XCP_PROVISION_DATA_DIR).",
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="TOML config file.",
    )(func)


def settings_for(config_file: Path | None, data_dir: Path | None) -> Settings:
    try:
        return load_settings(config_file, data_dir=data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def session_for(config_file: Path | None, data_dir: Path | None) -> Iterator[Session]:
    """One committed unit of work on the local inventory; store errors become CLI errors."""
    settings = settings_for(config_file, data_dir)
    try:
        with open_database(settings).scope(write=True) as session:
            yield session
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def emit(data: Any, as_json: bool, table: Callable[[], Table | str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    Console().print(table())


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def parse_assignments(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` words as a dict; VALUE is read as JSON when it parses, else as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
