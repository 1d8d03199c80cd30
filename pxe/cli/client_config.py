"""Where the admin CLI sends its commands from an operator's own machine: the server's URL and
the API token, from ``--server``, the environment, or ``~/.config/xcp-provision/cli.toml``.

The file holds an API token, so it must be readable by its owner alone (mode 0600); a file that
its group or others may open is refused rather than read.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

from pxe.config import CLIENT_CONFIG_ENV, CLIENT_SERVER_ENV, CLIENT_TOKEN_ENV

SERVER_ENV = CLIENT_SERVER_ENV
TOKEN_ENV = CLIENT_TOKEN_ENV
CONFIG_ENV = CLIENT_CONFIG_ENV


def config_path() -> Path:
    """``$XCP_PROVISION_CLI_CONFIG``, else ``cli.toml`` under the XDG config directory."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xcp-provision" / "cli.toml"


@dataclass(frozen=True)
class ClientFile:
    """What ``cli.toml`` says; both keys are optional."""

    path: Path
    server: str | None = None
    token: str | None = None


def read_client_file(path: Path | None = None) -> ClientFile:
    """The CLI's config file, or an empty one when there is none."""
    path = path or config_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        return ClientFile(path)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise click.ClickException(
            f"{path} holds an API token but its mode {mode:04o} lets other users open it; "
            f"run 'chmod 600 {path}' and try again"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    unknown = set(data) - {"server", "token"}
    if unknown:
        raise click.ClickException(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: server, token"
        )
    for key in ("server", "token"):
        if key in data and not isinstance(data[key], str):
            raise click.ClickException(f"{path}: '{key}' must be a string")
    return ClientFile(path, data.get("server") or None, data.get("token") or None)


def check_server_url(url: str) -> str:
    """``url`` without its trailing slash; refused unless it is http(s)://host[:port][/path]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not a server URL such as https://provision.example.com",
            param_hint="--server",
        )
    if parts.query or parts.fragment:
        raise click.BadParameter(f"{url!r}: give the server's URL without ? or #",
                                 param_hint="--server")  # fmt: skip
    return url.rstrip("/")


@dataclass(frozen=True)
class Remote:
    """The server a command goes to and the token it shows."""

    server: str
    token: str


def remote_target(server_option: str | None) -> Remote | None:
    """The server named by ``--server``, ``$XCP_PROVISION_SERVER`` or the config file (in that
    order), with its token; None when none names one (the command then works locally)."""
    env_server = os.environ.get(SERVER_ENV) or None
    file = read_client_file()
    server = server_option or env_server or file.server
    if server is None:
        return None
    token = os.environ.get(TOKEN_ENV) or file.token
    if not token:
        raise click.ClickException(
            f"no API token for {server}: set {TOKEN_ENV}, or 'token' in {file.path} (mode 0600), "
            "to a token made on the server with 'xcp-provision tokens create'"
        )
    return Remote(check_server_url(server), token)
