"""``xcp-provision profiles``: what hosts install, and the selectors that assign them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from pxe.cli.admin import emit, inventory_options, make_table, parse_assignments, session_for
from pxe.cli.audited import audited_session
from pxe.store import profiles as store
from pxe.store import selectors
from pxe.store.audit import hidden_values
from pxe.store.views import profile_view, selector_view


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
@inventory_options
def create(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool,
           **options: Any) -> None:  # fmt: skip
    """Create profile NAME."""
    fields = _fields(**options)
    with audited_session(config_file, data_dir, "profiles.create", name, fields=fields,
                         hide=hidden_values(fields)) as work:  # fmt: skip
        row = profile_view(store.create_profile(work.session, name, **fields))
    emit(row, as_json, lambda: _table([row]))


@profiles.command("edit")
@click.argument("name")
@_profile_options
@inventory_options
def edit(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool,
         **options: Any) -> None:  # fmt: skip
    """Change profile NAME (variables given replace all of them)."""
    fields = _fields(**options)
    with audited_session(config_file, data_dir, "profiles.edit", name, fields=fields,
                         hide=hidden_values(fields)) as work:  # fmt: skip
        profile = store.get_profile(work.session, name)
        row = profile_view(store.update_profile(work.session, profile, **fields))
    emit(row, as_json, lambda: _table([row]))


@profiles.command("list")
@inventory_options
def list_(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List profiles."""
    with session_for(config_file, data_dir) as session:
        rows = [profile_view(p) for p in store.list_profiles(session)]
    emit(rows, as_json, lambda: _table(rows))


@profiles.command("show")
@click.argument("name")
@inventory_options
def show(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Show profile NAME and what its hosts get once its parents are folded in."""
    with session_for(config_file, data_dir) as session:
        profile = store.get_profile(session, name)
        row = {**profile_view(profile), "effective": asdict(store.resolve_profile(profile))}
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
@inventory_options
def delete(name: str, config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Delete profile NAME (refused while hosts or child profiles use it)."""
    with audited_session(config_file, data_dir, "profiles.delete", name) as work:
        store.delete_profile(work.session, store.get_profile(work.session, name))
    emit({"deleted": name}, as_json, lambda: f"deleted profile {name}")


@profiles.command("select")
@click.argument("name")
@click.argument("field", type=click.Choice(selectors.FIELDS))
@click.argument("pattern")
@inventory_options
def select(*, name: str, field: str, pattern: str, config_file: Path | None,
           data_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Give profile NAME to discovered hosts whose FIELD matches PATTERN (wildcards * ? [..])."""
    with audited_session(config_file, data_dir, "profiles.select", name,
                         fields=["field", "pattern"]) as work:  # fmt: skip
        profile = store.get_profile(work.session, name)
        row = selector_view(selectors.add_selector(work.session, profile, field, pattern))
    emit(row, as_json, lambda: f"selector {row['id']}: {field} {row['pattern']} -> {name}")
