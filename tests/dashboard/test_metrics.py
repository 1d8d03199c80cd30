"""``/metrics``: hosts by state, installs started/succeeded/failed as the installers report
them, TFTP totals of a real transfer, and the HTTP latency histogram."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from common import runner
from pxe.db.session import Database
from pxe.store.hosts import add_host
from pxe.store.tokens import issue_install_token
from pxe.tftp.server import TftpService
from pxe.web.metrics import attach_tftp

Labels = tuple[tuple[str, str], ...]


def scrape(client: FlaskClient) -> dict[tuple[str, Labels], float]:
    response = client.get("/metrics")  # no token: Prometheus scrapes without one
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _ready_host(database: Database, number: int) -> dict[str, str]:
    with database.scope() as session:
        host = add_host(session, macs=[f"52:54:00:00:01:{number:02x}"], profile="demo")
        return {"Authorization": f"Bearer {issue_install_token(host)}"}


def test_install_counters_and_hosts_by_state(client: FlaskClient, database: Database) -> None:
    before = scrape(client)
    assert before[("xcp_provision_installs_started_total", ())] == 0
    assert before[("xcp_provision_hosts", (("state", "ready"),))] == 0

    good, bad, idle = (_ready_host(database, n) for n in (1, 2, 3))
    for step in ("partition", "laydown", "bootloader"):
        assert (
            client.post("/api/v1/installs/events", headers=good, json={"step": step}).status_code
            == 202
        )
    assert client.post("/api/v1/installs/done", headers=good).status_code == 200
    assert client.post("/api/v1/installs/done", headers=good).status_code == 409  # a replay
    client.post("/api/v1/installs/events", headers=bad, json={"step": "partition"})
    assert (
        client.post("/api/v1/installs/failed", headers=bad, json={"reason": "no disk"}).status_code
        == 202
    )
    assert (
        client.post(
            "/api/v1/installs/events",
            headers={"Authorization": "Bearer xpi_nope"},
            json={"step": "x"},
        ).status_code
        == 403
    )
    del idle

    after = scrape(client)
    assert after[("xcp_provision_installs_started_total", ())] == 2
    assert after[("xcp_provision_installs_finished_total", (("result", "succeeded"),))] == 1
    assert after[("xcp_provision_installs_finished_total", (("result", "failed"),))] == 1
    hosts = {
        s: after[("xcp_provision_hosts", (("state", s),))]
        for s in ("ready", "installing", "installed", "failed", "in-pool")
    }
    assert hosts == {"ready": 1, "installing": 0, "installed": 1, "failed": 1, "in-pool": 0}


def test_latency_histogram_counts_requests_by_route(client: FlaskClient) -> None:
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page")
    samples = scrape(client)
    route = (("method", "GET"), ("route", "/healthz"))
    assert samples[("xcp_provision_http_request_duration_seconds_count", route)] == 3
    assert (
        samples[
            (
                "xcp_provision_http_request_duration_seconds_bucket",
                tuple(sorted((*route, ("le", "+Inf")))),
            )
        ]
        == 3
    )
    assert samples[("xcp_provision_http_request_duration_seconds_sum", route)] > 0
    assert samples[("xcp_provision_http_requests_total", (*route, ("status", "200")))] == 3
    assert (
        samples[
            (
                "xcp_provision_http_requests_total",
                (("method", "GET"), ("route", "(unmatched)"), ("status", "404")),
            )
        ]
        == 1
    )


def test_tftp_totals_of_a_real_transfer(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert not any(name.startswith("xcp_provision_tftp") for name, _ in scrape(client))
    root = tmp_path / "tftp"
    root.mkdir()
    (root / "loader.efi").write_bytes(b"\x7fELF" + bytes(5000))
    service = TftpService(root, lambda path, client: None, host="127.0.0.1", port=0)
    service.start()
    try:
        attach_tftp(app, service.counters)
        out = tmp_path / "got.efi"
        runner.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                str(out),
                f"tftp://127.0.0.1:{service.port}/loader.efi",
            ]
        )
        runner.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                str(tmp_path / "none"),
                f"tftp://127.0.0.1:{service.port}/missing.efi",
            ],
            check=False,
        )
    finally:
        service.stop()
    assert out.stat().st_size == 5004
    samples = scrape(client)
    assert samples[("xcp_provision_tftp_transfers_total", ())] == 1
    assert samples[("xcp_provision_tftp_sent_bytes_total", ())] == 5004
    assert samples[("xcp_provision_tftp_refused_requests_total", ())] == 1
