"""JSON log lines: the formatter, the access line of each request (tokens hidden), and
``xcp-provision serve --log-json`` as a real process whose whole output is JSON."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.serve import free_port, serve_process

from common import runner
from pxe.config import ConfigError
from pxe.logging_json import configure_logging

EXE = Path(sys.executable).parent / "xcp-provision"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_access_lines_are_json_without_tokens(
    restore_logging: None, client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    client.get("/answerfile/1?token=xpi_secret-value")
    client.get("/boot/ipxe")
    client.get("/healthz")  # routine: DEBUG, below the INFO the server logs at
    client.get("/metrics")
    lines = json_lines(capsys.readouterr().err)
    access = [line for line in lines if line["logger"] == "pxe.web.access"]
    assert [a["route"] for a in access] == ["/answerfile/<ref>", "/boot/ipxe"]
    first = access[0]
    assert first["message"].startswith("GET /answerfile/1?token=*** 404 ")
    assert (first["level"], first["method"], first["path"], first["status"]) == (
        "INFO",
        "GET",
        "/answerfile/1",
        404,
    )
    assert first["duration_ms"] > 0 and first["remote_addr"] == "127.0.0.1"
    assert first["time"].endswith("Z")
    assert all("xpi_secret" not in json.dumps(line) for line in lines)


def test_exceptions_are_one_json_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        logging.getLogger("pxe.test").exception("install %s failed", "node1")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["level"], line["logger"], line["message"]) == (
        "ERROR",
        "pxe.test",
        "install node1 failed",
    )
    assert "RuntimeError: disk on fire" in line["exception"]


def test_text_stays_the_default_and_unknown_formats_are_refused(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("text")
    logging.getLogger("pxe.test").info("plain %d", 1)
    assert capsys.readouterr().err.rstrip().endswith(" INFO pxe.test: plain 1")
    with pytest.raises(ConfigError, match="log_format 'xml' is not one of: text, json"):
        configure_logging("xml")


def test_serve_log_json_and_tftp_metrics(tmp_path: Path) -> None:
    """The real process: every line it writes is JSON, and /metrics counts its TFTP."""
    tftp_port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out, serve_process(
        tmp_path / "data", "--log-json", "--tftp-port", str(tftp_port), "--no-dhcp", output=out
    ) as (base, proc):
        fetched = runner.run(
            ["curl", "-sS", "--max-time", "10", f"tftp://127.0.0.1:{tftp_port}/boot.ipxe"]
        )
        assert fetched.stdout.startswith("#!ipxe")
        # The server counts a transfer when the client's last ACK arrives, which may be just
        # after curl has exited: on a busy machine the count shows a moment later.
        deadline = time.monotonic() + 10
        while True:
            metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
            if "xcp_provision_tftp_transfers_total 1.0" in metrics:
                break
            assert time.monotonic() < deadline, metrics
            time.sleep(0.1)
        urllib.request.urlopen(f"{base}/boot/ipxe", timeout=10).read()
    output = log.read_bytes()
    assert proc.returncode == 0, output.decode()
    lines = json_lines(output.decode())
    messages = [line["message"] for line in lines]
    assert "SIGTERM received, stopping" in messages
    assert any(m.startswith("tftp sent boot.ipxe to 127.0.0.1:") for m in messages)
    access = [line for line in lines if line["logger"] == "pxe.web.access"]
    assert [(a["path"], a["status"]) for a in access] == [("/boot/ipxe", 200)]
