"""``/metrics`` for Prometheus, and one access-log line per HTTP request.

Counters that only this process sees (installs reported, request latency) live in a registry of
the app, so several apps in one process (tests, benches) never mix their figures. When ``serve``
runs several HTTP worker processes it sets ``PROMETHEUS_MULTIPROC_DIR`` for them: each worker
then writes its counters to files there and a scrape, whichever worker answers it, sums them all
(prometheus-client's multiprocess mode). Gauges that the
inventory already knows (hosts by state) and the TFTP service's own counters are read at scrape
time, so they are never stale and cost nothing between scrapes.

``/metrics`` needs no token, like every Prometheus exporter: it says how many hosts are in each
state, never which ones.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Blueprint, Flask, Request, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from pxe.boot.discovery import REASONS
from pxe.store.hosts import count_hosts_by_state
from pxe.store.lifecycle import State
from pxe.store.security_events import CHECKS, SecurityRefusalError
from pxe.tftp.counters import SharedTftpCounters
from pxe.tftp.server import TftpCounters
from pxe.web.context import client_address, db

bp = Blueprint("metrics", __name__)

EXTENSION = "xcp_provision_metrics"
# ``serve`` puts the running TftpService's counters here (see :func:`attach_tftp`).
TFTP_EXTENSION = "xcp_provision_tftp"
PREFIX = "xcp_provision"

access_log = logging.getLogger("pxe.web.access")

# Seconds; an iPXE script or an answer file takes milliseconds, a release image many seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
_PROGRESS, _DONE, _FAILED = "installs.progress", "installs.done", "installs.failed"


@dataclass(frozen=True)
class AppMetrics:
    registry: CollectorRegistry
    installs_started: Counter
    installs_finished: Counter
    latency: Histogram
    requests: Counter
    security_events: Counter
    discovery_refused: Counter


class _ScrapeTimeCollector:
    """Hosts by state from the inventory, TFTP totals from the running service."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration time: collect() needs a request

    def collect(self) -> Iterator[Metric]:
        hosts = GaugeMetricFamily(
            f"{PREFIX}_hosts", "Hosts in the inventory by lifecycle state.", labels=["state"]
        )
        counts = count_hosts_by_state(db())
        for state in State:
            hosts.add_metric([state.value], counts.get(state.value, 0))
        yield hosts
        tftp: TftpCounters | SharedTftpCounters | None = self._app.extensions.get(TFTP_EXTENSION)
        if tftp is None:
            return
        for name, value, text in (
            ("tftp_transfers", tftp.transfers, "TFTP downloads completed."),
            ("tftp_sent_bytes", tftp.bytes, "Payload bytes of completed TFTP downloads."),
            ("tftp_failed_transfers", tftp.failed, "TFTP downloads started, not completed."),
            (
                "tftp_refused_requests",
                tftp.refused,
                "TFTP requests refused (upload, escape, missing file).",
            ),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", text, value=value)


def _exposed_registry(app: Flask) -> tuple[CollectorRegistry, CollectorRegistry]:
    """The registry a scrape reads, and the one this process's counters are created in.

    In multiprocess mode the counters' values go to files whatever registry holds them, so
    they are kept out of the scraped registry, which reads every worker's files instead."""
    scraped = CollectorRegistry()
    scraped.register(_ScrapeTimeCollector(app))
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return scraped, scraped
    MultiProcessCollector(scraped, path=directory)
    return scraped, CollectorRegistry()


def _setup(state: BlueprintSetupState) -> None:
    scraped, registry = _exposed_registry(state.app)
    finished = Counter(
        f"{PREFIX}_installs_finished",
        "Installs that reported build-done (succeeded) or a failure (failed).",
        ["result"],
        registry=registry,
    )
    for result in ("succeeded", "failed"):
        finished.labels(result)
    security = Counter(
        f"{PREFIX}_security_events",
        "Requests refused by a security check (pxe.store.security_events), by check.",
        ["kind"],
        registry=registry,
    )
    for check in CHECKS:
        security.labels(check)
    refused = Counter(
        f"{PREFIX}_discovery_refused",
        "Unknown machines not recorded (pxe.boot.discovery), by reason.",
        ["reason"],
        registry=registry,
    )
    for reason in REASONS:
        refused.labels(reason)
    state.app.extensions[EXTENSION] = AppMetrics(
        registry=scraped,
        installs_started=Counter(
            f"{PREFIX}_installs_started",
            "Installs started: a ready host's installer sent its first progress event.",
            registry=registry,
        ),
        installs_finished=finished,
        latency=Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (the URL rule, not the URL).",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        requests=Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        security_events=security,
        discovery_refused=refused,
    )


bp.record_once(_setup)


def attach_tftp(app: Flask, counters: TftpCounters | SharedTftpCounters) -> None:
    """Publish a running TFTP service's counters on ``/metrics``."""
    app.extensions[TFTP_EXTENSION] = counters


def _metrics() -> AppMetrics:
    return current_app.extensions[EXTENSION]


def count_security_event(check: str) -> None:
    """One more request of this app refused by security check ``check``."""
    _metrics().security_events.labels(check).inc()


@contextmanager
def counting_refusals() -> Iterator[None]:
    """Count a security check's refusal raised inside, and let it go on to its 403."""
    try:
        yield
    except SecurityRefusalError as exc:
        count_security_event(exc.check)
        raise


def count_discovery_refused(app: Flask, reason: str) -> None:
    """One more discovery refused by ``app`` (pxe.boot.discovery's ``on_refused``)."""
    app.extensions[EXTENSION].discovery_refused.labels(reason).inc()


@bp.before_app_request
def _start_clock() -> None:
    g.xcp_request_started = time.perf_counter()


@bp.after_app_request
def _observe(response: Response) -> Response:
    started = g.pop("xcp_request_started", None)
    if started is None:
        return response
    seconds = time.perf_counter() - started
    metrics = _metrics()
    # The request itself, not its proxy: each attribute read through the proxy looks the
    # request up again, and this runs for every request the server answers.
    req = request._get_current_object()
    method, rule, status = req.method, req.url_rule, response.status_code
    route = rule.rule if rule is not None else "(unmatched)"
    metrics.latency.labels(method, route).observe(seconds)
    metrics.requests.labels(method, route, str(status)).inc()
    if status < 300:
        _count_install(metrics, req.endpoint)
    level = logging.DEBUG if _routine(route) else logging.INFO
    if not access_log.isEnabledFor(level):
        return response
    access_log.log(
        level,
        "%s %s %d %.1f ms",
        method,
        _loggable_path(req),
        status,
        seconds * 1000,
        extra={
            "method": method,
            "path": req.path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "remote_addr": client_address(),
        },
    )
    return response


def _routine(route: str) -> bool:
    """Scrapes, health checks and the dashboard's 2-second polls: logged only at DEBUG, or an
    open browser tab would write most of the log."""
    return route in ("/metrics", "/healthz") or route.endswith("/live")


def _loggable_path(req: Request) -> str:
    """The path and query, with token values hidden (answer-file URLs carry install tokens)."""
    if not req.args:
        return req.path
    query = "&".join(
        f"{key}={'***' if 'token' in key.lower() else value}"
        for key, value in req.args.items(multi=True)
    )
    return f"{req.path}?{query}"


def _count_install(metrics: AppMetrics, endpoint: str | None) -> None:
    """A 2xx from these endpoints is a state move (replays and wrong states are 409s); the
    progress view says whether its report was a ready host's first."""
    if endpoint == _PROGRESS and g.pop("xcp_install_starting", False):
        metrics.installs_started.inc()
    elif endpoint == _DONE:
        metrics.installs_finished.labels("succeeded").inc()
    elif endpoint == _FAILED:
        metrics.installs_finished.labels("failed").inc()


@bp.get("/metrics")
def metrics() -> Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(_metrics().registry), content_type=content_type)
