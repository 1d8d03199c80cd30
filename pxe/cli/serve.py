"""``xcp-provision serve``: HTTP (waitress), TFTP and ProxyDHCP.

TFTP and ProxyDHCP run in this process; HTTP runs here too when one worker is asked for, else in
that many worker processes, each on a listening socket this process binds and keeps
(:mod:`pxe.httpd.workers`), which this process keeps running. TFTP's per-host files and the HTTP
iPXE scripts ask the same inventory through one decision,
:func:`pxe.boot.decide.decide_and_record`. SIGTERM and SIGINT stop the workers and every service
and close the database before exiting.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from sqlalchemy.exc import IntegrityError

from pxe.boot.decide import plan_for_mac
from pxe.boot.watchdog import InstallWatchdog
from pxe.config import ConfigError, Settings, load_settings
from pxe.db.session import Database, close_databases, open_database
from pxe.dhcp.bootpath import BootPathRecorder
from pxe.dhcp.pool import DhcpRange
from pxe.dhcp.proxy import ProxyDhcpService
from pxe.httpd.server import hand_over_interpreter_quickly, make_socket_server
from pxe.httpd.workers import HttpWorkers, listening_socket, listening_sockets
from pxe.logging_json import configure_logging
from pxe.rolls import RollDriver
from pxe.store.errors import ConflictError, NotFoundError
from pxe.store.profiles import create_profile, get_profile
from pxe.tftp.counters import SharedTftpCounters
from pxe.tftp.files import GeneratedFiles
from pxe.tftp.loaders import http_loader_for_arch, loader_for_arch, prepare_tftp_root
from pxe.tftp.server import TftpService
from pxe.web.app import create_app
from pxe.web.metrics import attach_tftp

log = logging.getLogger("pxe.serve")

DEMO = "demo"
T = TypeVar("T")
# Writes a demo release into the directory it is given.
DemoWriter = Callable[[Path], object]


def seed_demo(settings: Settings, database: Database, write_release: DemoWriter) -> None:
    """The demo release and a profile ``demo`` using it, each only when absent."""
    release_dir = settings.releases_dir / DEMO
    if not (release_dir / "manifest.json").is_file():
        release_dir.mkdir(parents=True, exist_ok=True)
        write_release(release_dir)
        log.info("demo release written to %s", release_dir)
    with database.scope() as session:
        try:
            get_profile(session, DEMO)
        except NotFoundError:
            try:
                with session.begin_nested():
                    create_profile(session, DEMO, release=DEMO, template="fresh-dhcp")
            # Another server sharing the database made it first: seen by the name check
            # (committed since the read above) or by the unique index (committed meanwhile).
            except (ConflictError, IntegrityError):
                return
            log.info("profile %r created", DEMO)


_WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104


def _pinned_server_ip(settings: Settings, base: str | None) -> str | None:
    """The boot server address every network gets, if one is set (server_ip, or the IPv4
    address of the public URL or bind address); ``None``: each its own interface's."""
    if settings.server_ip:
        return settings.server_ip
    try:
        return str(IPv4Address(urlsplit(base).hostname or "")) if base else None
    except ValueError:
        return None


class Services:
    """The UDP services started next to HTTP, stopped in reverse order."""

    def __init__(self) -> None:
        self.running: list[object] = []

    def start_tftp(
        self, settings: Settings, database: Database, shared_counters: Path | None = None
    ) -> TftpService:
        """``shared_counters``: a file to count in, for HTTP workers in other processes."""
        root = prepare_tftp_root(settings.data_dir)
        generated = GeneratedFiles(plan_for_mac(settings, database), settings.base_url())
        # As many pumps as HTTP workers: one per core unless the operator says otherwise.
        service = TftpService(root, generated, settings.ipv4_bind(), settings.tftp_port,
                              pumps=settings.workers())  # fmt: skip
        if shared_counters is not None:
            service.counters = SharedTftpCounters(shared_counters, writable=True)
        service.start()
        self.running.append(service)
        return service

    def start_dhcp(self, settings: Settings, database: Database) -> None:
        full = None
        if settings.dhcp_range_start:
            full = DhcpRange(
                start=IPv4Address(settings.dhcp_range_start),
                end=IPv4Address(settings.dhcp_range_end or settings.dhcp_range_start),
                netmask=IPv4Address(settings.dhcp_netmask),
                router=IPv4Address(settings.dhcp_router) if settings.dhcp_router else None,
                dns=tuple(
                    IPv4Address(a.strip()) for a in settings.dhcp_dns.split(",") if a.strip()
                ),
            )
        # The loaders UEFI HTTP Boot fetches over HTTP live where TFTP's do, TFTP on or off.
        root = settings.tftp_root if settings.tftp_port else prepare_tftp_root(settings.data_dir)
        # Without a public URL or a bind address, each network gets its own interface's address.
        pinned = settings.public_url or settings.bind not in _WILDCARD
        base = settings.base_url() if pinned else None
        recorder = BootPathRecorder(database)
        service = ProxyDhcpService(
            _pinned_server_ip(settings, base),
            base,
            bind=settings.ipv4_bind(),
            interfaces=settings.dhcp_interface_names(),
            http_port=settings.http_port,
            ports=(settings.dhcp_port, settings.pxe_port),
            loaders=loader_for_arch(root) if settings.tftp_port else {},
            http_loaders=http_loader_for_arch(root),
            full_dhcp=full,
            on_answer=recorder.note,
        )
        recorder.start()
        self.running.append(recorder)
        service.start()
        self.running.append(service)

    def stop(self) -> None:
        while self.running:
            service = self.running.pop()
            try:
                service.stop()  # type: ignore[attr-defined]
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)


class _StopSignalError(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to leave waitress's loop.

    A SystemExit, because waitress's socket handlers let only that, KeyboardInterrupt and their
    own ExitNow through (any other exception is logged and swallowed, and the server would keep
    running); ``run()`` then closes the server and returns."""


class _Signals:
    """Turns the first SIGTERM/SIGINT into _StopSignalError and remembers which one came.

    Later ones only say so: raised again, they would cut the orderly stop short (workers left to
    die on their own, a traceback, exit status 1) for a user pressing Ctrl-C twice."""

    def __init__(self) -> None:
        self.received: str | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            log.info("%s received while stopping; still stopping", name)
            return
        self.received = name
        raise _StopSignalError(name)


def _start(what: str, port: object, starter: Callable[[], T]) -> T:
    """Start one service; a port in use or a bad address becomes one clear CLI error."""
    try:
        return starter()
    except (OSError, ValueError) as exc:
        raise click.ClickException(
            f"{what} cannot start on port {port}: {exc} (change the port or its setting"
            f"{', or pass --no-dhcp' if what == 'ProxyDHCP' else ''})"
        ) from exc


def serve_command(write_demo_release: DemoWriter) -> click.Command:
    """``serve``, handed how to write the demo release: image building sits above the server,
    so the command line that assembles both passes it down."""

    @click.command()
    @click.option(
        "--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path)
    )
    @click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
    @click.option("--bind", default=None, help="Address to listen on (default 0.0.0.0).")
    @click.option("--http-port", type=click.IntRange(0, 65535), default=None, help="Default 8080.")
    @click.option(
        "--tftp-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Default 69; 0 turns TFTP off.",
    )
    @click.option(
        "--workers",
        type=click.IntRange(0),
        default=None,
        help="HTTP worker processes (http_workers; default 0: one per CPU).",
    )
    @click.option("--no-dhcp", is_flag=True, help="Do not answer PXE DHCP requests.")
    @click.option(
        "--demo", is_flag=True, help="Seed the demo release and a 'demo' profile if absent."
    )
    @click.option(
        "--log-json", is_flag=True, help="Log one JSON object a line (log_format = json)."
    )
    def serve(**options: Any) -> None:
        """Serve network boot, answer files, releases and the API."""
        run_server(**options, write_demo_release=write_demo_release)

    return serve


def run_server(
    *,
    config_file: Path | None,
    data_dir: Path | None,
    bind: str | None,
    http_port: int | None,
    tftp_port: int | None,
    workers: int | None,
    no_dhcp: bool,
    demo: bool,
    log_json: bool,
    write_demo_release: DemoWriter,
) -> None:
    """Serve until SIGTERM or SIGINT; ``--demo`` seeds through ``write_demo_release``."""
    hand_over_interpreter_quickly()
    try:
        settings = load_settings(
            config_file,
            data_dir=data_dir,
            bind=bind,
            http_port=http_port,
            tftp_port=tftp_port,
            http_workers=workers,
            dhcp_enabled=False if no_dhcp else None,
            log_format="json" if log_json else None,
        )
        configure_logging(settings.log_format)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings)
    if demo:
        seed_demo(settings, database, write_demo_release)
    services = Services()
    signals = _Signals()
    previous = {s: signal.signal(s, signals) for s in (signal.SIGTERM, signal.SIGINT)}
    pool: HttpWorkers | None = None
    watchdog = InstallWatchdog(settings, database)  # fails silent installs (pxe.boot.watchdog)
    watchdog.start()
    rolls = RollDriver(settings, database)  # rolling reinstalls (pxe.rolls), this process only
    rolls.start()
    try:
        if settings.workers() > 1:
            pool = _serve_with_workers(settings, database, services)
            while True:  # until a signal raises _StopSignalError
                pool.check()
                time.sleep(0.5)
        else:
            _serve_in_process(settings, database, services)
    except _StopSignalError:
        pass  # the signal came before or after waitress's loop
    finally:
        if signals.received:
            log.info("%s received, stopping", signals.received)
        if pool is not None:
            pool.stop()
        services.stop()
        rolls.stop()
        watchdog.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        close_databases()


def _start_udp(
    settings: Settings, database: Database, services: Services, tftp_counters: Path | None = None
) -> TftpService | None:
    tftp = None
    if settings.tftp_port:
        tftp = _start("TFTP", settings.tftp_port, lambda: services.start_tftp(
            settings, database, tftp_counters))  # fmt: skip
    if settings.dhcp_enabled:
        ports = f"{settings.dhcp_port} and {settings.pxe_port}"
        _start("ProxyDHCP", ports, lambda: services.start_dhcp(settings, database))
    return tftp


def _serve_in_process(settings: Settings, database: Database, services: Services) -> None:
    app = create_app(settings, database=database)
    sock = _start("HTTP", settings.http_port, lambda: listening_socket(
        settings.bind, settings.http_port))  # fmt: skip
    server = make_socket_server(app, sock, settings.http_threads)
    tftp = _start_udp(settings, database, services)
    if tftp is not None:
        attach_tftp(app, tftp.counters)
    log.info("HTTP on %s (hosts use %s)", settings.http_port, settings.base_url())
    server.run()  # returns when a signal stops waitress's loop


def _serve_with_workers(settings: Settings, database: Database, services: Services) -> HttpWorkers:
    socks = _start("HTTP", settings.http_port, lambda: listening_sockets(
        settings.bind, settings.http_port, settings.workers()))  # fmt: skip
    run_dir = settings.data_dir / "run"
    run_dir.mkdir(exist_ok=True)
    counters = run_dir / "tftp-counters" if settings.tftp_port else None
    if counters is not None:  # zero totals, in place before the workers map the file
        counters.unlink(missing_ok=True)
        SharedTftpCounters(counters, writable=True).close()
    workers = HttpWorkers(settings, socks, run_dir, counters)
    workers.start()
    _start_udp(settings, database, services, counters)
    log.info("HTTP on %s in %d worker processes (hosts use %s)",
             socks[0].getsockname()[1], len(socks), settings.base_url())  # fmt: skip
    return workers
