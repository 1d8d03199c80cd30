"""Where an admin command runs, chosen once per invocation: on this machine's data directory
(``--data-dir``, pxe.cli.local) or on a server through its REST API (``--server``,
pxe.cli.remote). Both return the same views, so each command renders its tables once.

The choice: ``--data-dir`` given works locally; else ``--server``, ``$XCP_PROVISION_SERVER`` or
the CLI config file's ``server`` (in that order) works remotely; else locally on the default
data directory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from pxe.cli.admin import inventory_options
from pxe.cli.client_config import SERVER_ENV, remote_target
from pxe.cli.local import LocalBackend
from pxe.cli.remote import ApiClient, RemoteBackend
from pxe.store.bmc import BmcSettings
from pxe.store.rolls import RollRequest

View = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


class Backend(Protocol):
    """The operations the admin commands need; every view is the REST API's JSON shape."""

    remote: bool

    def list_hosts(
        self, *, state: str | None, pool: str | None, profile: str | None
    ) -> list[View]: ...
    def add_host(
        self,
        *,
        macs: tuple[str, ...],
        hostname: str | None,
        uuid: str | None,
        serial: str | None,
        profile: str | None,
        pool: str | None,
    ) -> View: ...
    def show_host(self, ref: str, *, events: int) -> View: ...
    def edit_host(self, ref: str, changes: Mapping[str, Any]) -> View: ...
    def reinstall_host(self, ref: str, *, power: bool) -> View: ...
    def remove_host(self, ref: str) -> int: ...
    def host_events(self, ref: str, *, limit: int) -> list[View]: ...
    def set_bmc(self, ref: str, given: BmcSettings) -> View: ...
    def remove_bmc(self, ref: str) -> None: ...
    def power_status(self, ref: str, *, fresh: bool) -> View: ...
    def power_action(self, ref: str, action: str) -> View: ...
    def start_roll(self, request: RollRequest) -> View: ...
    def list_rolls(self, *, status: str | None) -> list[View]: ...
    def show_roll(self, roll_id: int) -> View: ...
    def list_profiles(self) -> list[View]: ...
    def show_profile(self, name: str) -> View: ...
    def create_profile(self, name: str, fields: Mapping[str, Any]) -> View: ...
    def edit_profile(self, name: str, fields: Mapping[str, Any]) -> View: ...
    def delete_profile(self, name: str) -> None: ...
    def add_selector(self, name: str, field: str, pattern: str) -> View: ...
    def list_pools(self) -> list[View]: ...
    def create_pool(self, name: str, *, force: bool, master: str | None) -> View: ...
    def show_pool(self, name: str) -> View: ...
    def audit(self, *, since: str | None, limit: int) -> list[View]: ...


def choose_backend(config_file: Path | None, data_dir: Path | None, server: str | None) -> Backend:
    if server is not None and data_dir is not None:
        raise click.UsageError("give --server or --data-dir, not both")
    if data_dir is not None:
        return LocalBackend(config_file, data_dir)
    remote = remote_target(server)
    if remote is None:
        return LocalBackend(config_file, data_dir)
    if config_file is not None:
        raise click.UsageError(
            "--config is the server's own config file; it does not apply with --server "
            f"(or {SERVER_ENV})"
        )
    return RemoteBackend(ApiClient(remote))


def backend_options(func: F) -> F:
    """``--server`` beside ``--config``, ``--data-dir`` and ``--json``; the command gets a
    ``backend`` argument in place of the first three."""

    @functools.wraps(func)
    def run(
        *args: Any,
        config_file: Path | None,
        data_dir: Path | None,
        server: str | None,
        **kwargs: Any,
    ) -> Any:
        return func(*args, backend=choose_backend(config_file, data_dir, server), **kwargs)

    run = click.option(
        "--server",
        metavar="URL",
        default=None,
        help=f"Work through this server's REST API (or {SERVER_ENV}); the API token comes "
        "from XCP_PROVISION_TOKEN or ~/.config/xcp-provision/cli.toml.",
    )(run)
    return inventory_options(run)  # type: ignore[return-value]
