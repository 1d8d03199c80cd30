"""POST /api/v1/health over real HTTP (waitress on loopback), as the agent's --report sends it:
who may report, what is kept and shown, what becomes an event, and what is refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pxe.db.session import Database, close_databases
from pxe.store.tokens import create_api_token
from tests.support.registering import (
    events_of,
    facts,
    host_row,
    installed_host,
    post_register,
    rack_inventory,
    serving,
)
from xcp_provision.main import main


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with rack_inventory(tmp_path) as db:
        yield db


@pytest.fixture
def server(tmp_path: Path, database: Database) -> Iterator[str]:
    with serving(tmp_path, database) as url:
        yield url


def _call(
    url: str, token: str | None, body: Any = None, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def report(server: str, token: str | None, body: Any) -> tuple[int, dict[str, Any]]:
    return _call(f"{server}/api/v1/health", token, body)


def array(**changes: Any) -> dict[str, Any]:
    """One md array as the agent reads it (dom0/firstboot/agent.py's raid_arrays)."""
    return {"name": "md127", "level": "raid1", "members": 2, "expected": 2,
            "array_state": "clean", "sync_action": "idle", "progress": None, **changes}  # fmt: skip


def registered(server: str, database: Database, number: int) -> str:
    """A host in pool rack1; its report token."""
    status, answer = post_register(server, installed_host(database, number, pool="rack1"),
                                   facts(number))  # fmt: skip
    assert status == 200, answer
    return answer["report_token"]


def test_a_mirror_degrades_resyncs_and_is_clean_again_each_change_an_event(
    server: str, database: Database, tmp_path: Path
) -> None:
    token = registered(server, database, 1)
    assert token.startswith("xph_")
    host_id = host_row(database, 1).id
    with database.scope() as session:
        api_token = create_api_token(session, "ops")
    assert _call(f"{server}/api/v1/hosts/{host_id}", api_token, method="GET")[1]["health"] is None

    assert report(server, token, {"raid": [array()]}) == (
        200, {"raid_state": "clean", "raid": [{**array(), "state": "clean"}]}
    )  # fmt: skip
    status, answer = report(server, token, {"raid": [array(members=1, array_state="active")]})
    assert status == 200 and answer["raid_state"] == answer["raid"][0]["state"] == "degraded"
    report(server, token, {"raid": [array(members=1)]})  # the same state: no second event
    status, shown = _call(f"{server}/api/v1/hosts/{host_id}", api_token, method="GET")
    assert shown["health"]["raid_state"] == "degraded"
    assert shown["health"]["raid"] == [{**array(members=1), "state": "degraded"}]
    assert shown["health"]["reported_at"].endswith("Z")
    listed = _call(f"{server}/api/v1/hosts", api_token, method="GET")[1]["hosts"]
    assert [h["health"]["raid_state"] for h in listed] == ["degraded"]

    rebuilding = array(members=1, sync_action="recover", progress=42.25)
    assert report(server, token, {"raid": [rebuilding]})[1]["raid"][0]["progress"] == 42.2
    report(server, token, {"raid": [array()]})
    assert events_of(database, 1, "raid-warning") == ["md127 raid1 degraded, 1 of 2"]
    assert events_of(database, 1, "raid") == [
        "md127 raid1 clean, 2 of 2",
        "md127 raid1 resyncing, 1 of 2, recover 42.2%",
        "md127 raid1 clean, 2 of 2",
    ]

    report(server, token, {"raid": [array(members=1)]})
    shown = CliRunner().invoke(main, ["hosts", "show", str(host_id), "--data-dir", str(tmp_path)])
    close_databases()  # the CLI's engine on the same file
    assert shown.exit_code == 0, shown.output
    assert "degraded: md127 raid1 1 of 2" in " ".join(shown.output.split())


def test_only_the_report_token_of_the_host_opens_the_route(server: str, database: Database) -> None:
    install_token = installed_host(database, 1, pool="rack1")
    body = {"raid": [array(members=0)], "mac": facts(1)["mac"]}
    assert report(server, None, body)[0] == 401  # knowing the MAC opens nothing
    assert report(server, install_token, body)[0] == 401  # nor does the install token
    assert report(server, "xph_made-up", body)[0] == 401
    status, first = post_register(server, install_token, facts(1))
    assert report(server, first["report_token"], {"raid": []}) == (
        200, {"raid_state": "none", "raid": []}
    )  # fmt: skip
    # A retried registration (a lost answer) hands out another token; the first stops working.
    status, again = post_register(server, install_token, facts(1))
    assert status == 200
    assert report(server, first["report_token"], body)[0] == 401
    assert report(server, again["report_token"], {"raid": []})[0] == 200
    assert events_of(database, 1, "raid") == events_of(database, 1, "raid-warning") == []


def test_a_registration_refused_as_another_host_gets_no_report_token(
    server: str, database: Database
) -> None:
    token = installed_host(database, 1, pool="rack1")
    status, answer = post_register(server, token, facts(1, mac="52:54:00:99:99:99"))
    assert status == 403 and "report_token" not in answer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "raid"),
        ({"raid": "md127"}, "raid"),
        ({"raid": [array(), array()]}, "raid"),
        ({"raid": ["md127"]}, "raid[0]"),
        ({"raid": [array(name="sda")]}, "raid[0].name"),
        ({"raid": [array(level="RAID 1")]}, "raid[0].level"),
        ({"raid": [array(members=3)]}, "raid[0].members"),
        ({"raid": [array(expected=-1)]}, "raid[0].expected"),
        ({"raid": [array(members=True)]}, "raid[0].members"),
        ({"raid": [array(), array(name="md0", array_state="degraded")]}, "raid[1].array_state"),
        ({"raid": [array(sync_action="rebuild")]}, "raid[0].sync_action"),
        ({"raid": [array(progress=100.5)]}, "raid[0].progress"),
    ],
)
def test_a_bad_report_is_a_400_naming_its_field_and_keeps_nothing(
    server: str, database: Database, body: dict[str, Any], field: str
) -> None:
    token = registered(server, database, 1)
    status, answer = report(server, token, body)
    assert (status, answer["field"]) == (400, field), answer
    assert answer["error"].startswith(f"field {field!r} ")
    assert report(server, token, [array()])[0] == 400  # not an object
    assert events_of(database, 1, "raid") == []
