"""The server's settings: defaults, then a TOML file, then ``XCP_PROVISION_*`` environment.

One flat dataclass so every component (HTTP, TFTP, ProxyDHCP, DNS) reads the same values and an
operator can set any of them the same three ways. TOML tables flatten into prefixed names:
``[dns] server = "..."`` sets ``dns_server``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import wire

ENV_PREFIX = "XCP_PROVISION_"


class ConfigError(Exception):
    """A config file or environment value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    # SQLAlchemy URL; empty means SQLite in WAL mode at <data_dir>/inventory.sqlite3.
    database_url: str = ""
    bind: str = "0.0.0.0"  # noqa: S104 - a PXE server must be reachable from the racks
    http_port: int = 8080
    # The base URL hosts use to reach us (http://10.0.0.1:8080); empty means "the address the
    # request came in on", or the bind address for boot files computed outside HTTP (TFTP).
    public_url: str = ""
    tftp_port: int = 69
    dhcp_enabled: bool = True
    dhcp_port: int = 67
    pxe_port: int = 4011
    # The IPv4 address PXE clients fetch loaders from (DHCP next-server); empty: derived from
    # public_url, then bind, then the default route's interface.
    server_ip: str = ""
    # The interfaces ProxyDHCP serves (comma-separated, or a TOML list); empty: every interface
    # with an IPv4 address except loopback. Each request is answered out of the interface it
    # came in on. dhcp_interface is the older name, for one interface; both lists are served.
    dhcp_interfaces: str = ""
    dhcp_interface: str = ""
    # Full DHCP for an isolated lab network, off unless a range is given.
    dhcp_range_start: str = ""
    dhcp_range_end: str = ""
    dhcp_netmask: str = "255.255.255.0"
    dhcp_router: str = ""
    dhcp_dns: str = ""  # comma-separated
    # HTTP worker processes, each with its own socket on the port; 0 means one per CPU. Python
    # runs one thread at a time per process, so this, not http_threads, is what uses every core.
    http_workers: int = 0
    # Threads per worker: enough that a request waiting (for the write lock, a DNS server) does
    # not stall its worker; more only fight over the interpreter lock. With 16, a request cost
    # 1.6x the CPU it costs with 4 (ab, 8 at once: /healthz 0.68 against 0.52 ms, an answer
    # file 1.5 against 1.0 ms). 4 is also waitress's own default.
    http_threads: int = 4
    # An unknown or unassigned host asks again after this many seconds.
    retry_seconds: int = 30
    # Appended to every installer command line, before the profile's own arguments.
    kernel_args: str = "console=ttyS0,115200 console=tty0"
    # Behind nginx: release files are handed to it with X-Accel-Redirect to this internal
    # location (e.g. "/_releases/", see deploy/nginx.conf), so the kernel's sendfile moves the
    # images and no Python thread is held per download. Empty: served by the server itself.
    release_accel_prefix: str = ""
    # Failure logs uploaded by installers are cut to this many bytes.
    max_log_bytes: int = 1 << 20
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses); any other
    # peer is the client itself. Loopback: nginx on this machine (deploy/nginx.conf).
    trusted_proxies: str = "127.0.0.1,::1"
    # Unknown machines asking to boot are recorded as discovered (off: told they are not
    # allowed, nothing written), up to max_discovered discovered hosts, and at most
    # discovery_rate new hosts or MACs a minute from one source address (per process).
    discovery: bool = True
    max_discovered: int = 10000
    discovery_rate: int = 10
    # An install with no word from its installer for this many seconds fails; the check runs
    # every watchdog_interval seconds in serve.
    install_timeout: int = 1800
    watchdog_interval: int = 30
    # A failed install is retried at the host's next network boot until it has made this many.
    max_install_attempts: int = 3
    # Hosts installing at once; a ready host past it waits, queued, for a free slot.
    max_concurrent_installs: int = 50
    # A BMC call (pxe.bmc) gives up after bmc_timeout seconds, so no request waits longer for
    # a BMC; a host's power state read from its BMC is reused for bmc_status_cache_seconds
    # (per server process), so a dashboard of many hosts does not ask every BMC each refresh.
    bmc_timeout: int = 6
    bmc_status_cache_seconds: int = 5
    log_format: str = "text"  # text | json
    dns_server: str = ""
    dns_port: int = 53
    dns_forward_zone: str = ""
    # The zones PTR records go in (comma-separated, or a TOML list), in-addr.arpa and ip6.arpa
    # alike: each address goes to the most specific zone holding it. dns_reverse_zone is the
    # older name, for one zone; both are used.
    dns_reverse_zones: str = ""
    dns_reverse_zone: str = ""
    dns_key_name: str = ""
    dns_key_algorithm: str = "hmac-sha256"
    dns_key_file: str = ""

    @property
    def releases_dir(self) -> Path:
        return self.data_dir / "releases"

    @property
    def tftp_root(self) -> Path:
        return self.data_dir / "tftp"

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'inventory.sqlite3').resolve()}"

    def base_url(self, request_host_url: str | None = None) -> str:
        """Where a host reaches this server, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if request_host_url:
            return request_host_url.rstrip("/")
        host = self.bind if self.bind not in ("0.0.0.0", "::", "") else _primary_address()  # noqa: S104
        return f"http://{wire.authority(host, self.http_port)}"

    def ipv4_bind(self) -> str:
        """The address the IPv4-only UDP services (ProxyDHCP, TFTP) bind: IPv4's wildcard when
        ``bind`` is IPv6's, with which HTTP answers both families."""
        return "0.0.0.0" if self.bind == "::" else self.bind  # noqa: S104

    def pxe_server_ip(self) -> str:
        """The IPv4 address to hand PXE clients as the TFTP server."""
        if self.server_ip:
            return self.server_ip
        host = urlsplit(self.base_url()).hostname or ""
        try:
            return str(IPv4Address(host))
        except ValueError:
            return _primary_address()

    def dhcp_interface_names(self) -> tuple[str, ...]:
        """dhcp_interfaces and its older alias dhcp_interface, in order, each name once."""
        return _names(self.dhcp_interfaces, self.dhcp_interface)

    def dns_reverse_zone_names(self) -> tuple[str, ...]:
        """dns_reverse_zones and its older alias dns_reverse_zone, in order, each name once."""
        return _names(self.dns_reverse_zones, self.dns_reverse_zone)

    def workers(self) -> int:
        return self.http_workers if self.http_workers > 0 else max(1, os.cpu_count() or 1)

    def as_environment(self) -> dict[str, str]:
        """Every setting as the ``XCP_PROVISION_*`` variable that sets it: how a worker process
        gets exactly the settings of the ``serve`` that started it, file and flags included."""
        env = {}
        for name in _FIELDS:
            value = getattr(self, name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
        return env

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **_coerce_all(changes))


def _names(*lists: str) -> tuple[str, ...]:
    """The names of comma- or space-separated ``lists``, in order, each once."""
    names = ",".join(lists).replace(" ", ",").split(",")
    return tuple(dict.fromkeys(name for name in names if name))


def _primary_address() -> str:
    """The address of the interface that carries the default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Names the config file itself, so it is not a setting.
_CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
# What the admin CLI reads on an operator's machine (pxe.cli.client_config): never settings.
# The admin CLI's own variables (pxe.cli.client_config), not settings of the server.
CLIENT_SERVER_ENV = f"{ENV_PREFIX}SERVER"
CLIENT_TOKEN_ENV = f"{ENV_PREFIX}TOKEN"
CLIENT_CONFIG_ENV = f"{ENV_PREFIX}CLI_CONFIG"
CLIENT_ENV = frozenset({CLIENT_SERVER_ENV, CLIENT_TOKEN_ENV, CLIENT_CONFIG_ENV})


# Comma-separated settings that a TOML file may also give as a list.
_LIST_SETTINGS = frozenset({"dhcp_interfaces", "dhcp_dns", "dns_reverse_zones"})


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        raise ConfigError(f"unknown setting {name!r}; known settings: {', '.join(sorted(_FIELDS))}")
    default = _FIELDS[name].default
    if isinstance(value, list) and name in _LIST_SETTINGS:
        value = ",".join(str(item) for item in value)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{value!r} is not a boolean")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, Path):
            return Path(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from exc


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _coerce(name, value) for name, value in values.items()}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults, then the TOML file, then the environment, then explicit overrides (CLI flags).

    Overrides whose value is None are ignored so a CLI can pass every option unconditionally.
    """
    values: dict[str, Any] = {}
    env = os.environ if environ is None else environ
    if config_file is None and env.get(_CONFIG_ENV):
        config_file = Path(env[_CONFIG_ENV])
    if config_file is not None:
        try:
            with open(config_file, "rb") as fh:
                values.update(_flatten(tomllib.load(fh)))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {config_file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key != _CONFIG_ENV and key not in CLIENT_ENV:
            values[key[len(ENV_PREFIX) :].lower()] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**_coerce_all(values))
