"""``xcp-provision profiles``: what hosts install, and the selectors that assign them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pxe.cli.admin import emit, make_table, parse_assignments
from pxe.cli.backend import Backend, backend_options
from pxe.store import selectors


@click.group()
def profiles() -> None:
    """Create, list, show, edit and delete profiles; add selectors."""


def _table(rows: list[dict]) -> object:
    return make_table(
        f"{len(rows)} profile(s)",
        ["name", "parent", "release", "template", "pool", "kernel args", "selectors"],
        [
            (
                r["name"],
                r["parent"],
                r["release"],
                (r["template"] or "")[:40],
                r["pool"],
                r["kernel_args"],
                " ".join(f"{s['field']}={s['pattern']}" for s in r["selectors"]),
            )
            for r in rows
        ],
    )


def _fields(
    *,
    parent: str | None,
    release: str | None,
    template: str | None,
    template_file: Path | None,
    kernel_args: str | None,
    pool: str | None,
    variables: tuple[str, ...],
    disk: str | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if parent is not None:
        fields["parent"] = parent
    if release is not None:
        fields["release"] = release
    if template_file is not None:
        fields["template"] = template_file.read_text()
    elif template is not None:
        fields["template"] = template
    if kernel_args is not None:
        fields["kernel_args"] = kernel_args
    if pool is not None:
        fields["pool"] = pool
    if variables:
        fields["variables"] = parse_assignments(variables, "--var")
    if disk is not None:
        fields["disk_rule"] = {"disk": disk}
    return fields


def _profile_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--parent", default=None, help="Inherit from this profile."),
            click.option("--release", default=None, help="Release name under <data>/releases."),
            click.option("--template", default=None, help="Bundled template name or path."),
            click.option(
                "--template-file",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                default=None,
                help="Store this file's text as the template.",
            ),
            click.option("--kernel-args", default=None, help="Extra installer kernel arguments."),
            click.option("--pool", default=None, help="Pool the hosts join."),
            click.option("--var", "variables", multiple=True, help="Template variable KEY=VALUE."),
            click.option("--disk", default=None, help="Target disk (the primary_disk variable)."),
        ]
    ):
        func = option(func)
    return func


@profiles.command("create")
@click.argument("name")
@_profile_options
@backend_options
def create(name: str, backend: Backend, as_json: bool, **options: Any) -> None:
    """Create profile NAME."""
    row = backend.create_profile(name, _fields(**options))
    emit(row, as_json, lambda: _table([row]))


@profiles.command("edit")
@click.argument("name")
@_profile_options
@backend_options
def edit(name: str, backend: Backend, as_json: bool, **options: Any) -> None:
    """Change profile NAME (variables given replace all of them)."""
    row = backend.edit_profile(name, _fields(**options))
    emit(row, as_json, lambda: _table([row]))


@profiles.command("list")
@backend_options
def list_(backend: Backend, as_json: bool) -> None:
    """List profiles."""
    rows = backend.list_profiles()
    emit(rows, as_json, lambda: _table(rows))


@profiles.command("show")
@click.argument("name")
@backend_options
def show(name: str, backend: Backend, as_json: bool) -> None:
    """Show profile NAME and what its hosts get once its parents are folded in."""
    row = backend.show_profile(name)
    emit(
        row,
        as_json,
        lambda: make_table(
            f"profile {name}",
            ["field", "value"],
            [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in row.items()],
        ),
    )


@profiles.command("delete")
@click.argument("name")
@backend_options
def delete(name: str, backend: Backend, as_json: bool) -> None:
    """Delete profile NAME (refused while hosts or child profiles use it)."""
    backend.delete_profile(name)
    emit({"deleted": name}, as_json, lambda: f"deleted profile {name}")


@profiles.command("select")
@click.argument("name")
@click.argument("field", type=click.Choice(selectors.FIELDS))
@click.argument("pattern")
@backend_options
def select(*, name: str, field: str, pattern: str, backend: Backend, as_json: bool) -> None:
    """Give profile NAME to discovered hosts whose FIELD matches PATTERN (wildcards * ? [..])."""
    row = backend.add_selector(name, field, pattern)
    emit(row, as_json, lambda: f"selector {row['id']}: {field} {row['pattern']} -> {name}")
