"""The /api/v1 description against the server's behaviour, checked by schemathesis.

A real ``serve`` process on loopback, its own description (``/api/v1/openapi.json``) and every
schemathesis check: no 5xx, only documented statuses, bodies matching their schemas, the content
types and headers described, valid data accepted and invalid data refused, authentication not
ignored, a deleted resource gone. Three runs:

- every operation with an admin API token (the installer routes get a token no host holds),
  through the examples, coverage and fuzzing phases;
- the routes installing hosts call, with no token or a made-up one: 401/403 (or 400), never 5xx;
- the stateful phase: scenarios that follow the description's links, creating hosts, profiles,
  selectors and pools and then reading, editing, reinstalling and deleting what they created.

Seeded and derandomized, with no example database, so every run (and CI) sends the same requests.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.errors import Flaky
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from support.serve import EXE, serve_process

from common import runner

SEED = 20_250_611
EXAMPLES = 100  # per operation and generation mode, in the fuzzing phase
SCENARIOS = 300  # stateful scenarios, each up to STEPS calls
STEPS = 12
RUNS = 50  # at most, to reach SCENARIOS (see the stateful test)
INSTALLER_ROUTES = r"^/api/v1/(installs/|register$|health$)"


@dataclass(frozen=True)
class Server:
    url: str
    data: Path
    token: str  # an admin API token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("fuzz")
    data = where / "data"
    # --demo: a release and a profile exist, so hosts the fuzzer adds can be made ready. The
    # server's log (a traceback for any 500) stays in serve.log beside the data.
    with (
        open(where / "serve.log", "wb") as log,
        serve_process(
            data, "--demo", "--tftp-port", "0", "--no-dhcp", "--workers", "1", output=log
        ) as (url, _proc),
    ):
        made = runner.run([EXE, "tokens", "create", "fuzzer", "--json", "--data-dir", data])
        yield Server(url, data, json.loads(made.stdout)["token"])


def _config(headers: dict[str, str]) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STEPS},
            },
            # Every check; max_response_time is off unless given a limit, and timing is for bench/.
            "checks": {"enabled": True},
        }
    )


# Setting a BMC is left out: with none set, the power routes answer 409 without sending a
# packet, where a made-up BMC address could be anywhere on the network.
BMC = {"method": "PUT", "path": "/api/v1/hosts/{ref}/bmc"}


@pytest.fixture(scope="module")
def admin_api(server: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{server.url}/api/v1/openapi.json",
        config=_config({"Authorization": f"Bearer {server.token}"}),
    )


@pytest.fixture(scope="module")
def host_api(server: Server) -> schemathesis.BaseSchema:
    """No token configured: schemathesis makes up the bearer tokens, or leaves them out."""
    return schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json", config=_config({}))


@pytest.fixture(autouse=True)
def _node_id_for_lazy_schemas(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 renames a lazy schema's test per operation through ``Node._nodeid``,
    which pytest 9.2 no longer has; give it the attribute back (reports only read it)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


admin = schemathesis.pytest.from_fixture("admin_api").exclude(**BMC)
host = schemathesis.pytest.from_fixture("host_api").include(path_regex=INSTALLER_ROUTES)


@admin.parametrize()
def test_every_operation_as_described(case: Case) -> None:
    case.call_and_validate()


@host.parametrize()
def test_installer_routes_refuse_callers_without_a_valid_install_token(case: Case) -> None:
    response = case.call_and_validate()
    if case.method.upper() == case.operation.method.upper():  # not a 405 for another method
        assert response.status_code in {400, 401, 403}, response.text


# Operations the links lead to, each of which must have been reached with a resource that exists
# at least once (any answer but 400, 404 and 5xx; a body may be refused before the URL is read):
# a link that points at the wrong field or operation would leave its target answering only 404.
# Reached, not succeeded: a reinstall succeeds only for a host with a profile (a chain of three
# linked calls), and the answers it gives instead (409 without a profile or a BMC) are checked
# against the description all the same.
LINKED = {
    "GET /api/v1/hosts/{ref}",
    "PATCH /api/v1/hosts/{ref}",
    "DELETE /api/v1/hosts/{ref}",
    "POST /api/v1/hosts/{ref}/reinstall",
    "GET /api/v1/hosts/{ref}/events",
    "GET /api/v1/profiles/{name}",
    "PATCH /api/v1/profiles/{name}",
    "DELETE /api/v1/profiles/{name}",
    "GET /api/v1/profiles/{name}/effective",
    "POST /api/v1/selectors",
    "DELETE /api/v1/selectors/{selector_id}",
    "GET /api/v1/pools/{name}",
    "DELETE /api/v1/pools/{name}",
}


def test_stateful_scenarios_follow_the_links(admin_api: schemathesis.BaseSchema) -> None:
    """Failures are collected, not raised: Hypothesis would replay a failing scenario to shrink
    it, against a server whose state has moved on, and report that instead.

    For the same reason Hypothesis may stop a run as flaky (a scenario starting like an earlier
    one took another turn: a name the earlier one created is taken now); the next run, with the
    next seed, goes on until SCENARIOS scenarios have run, as schemathesis's own runner does."""
    reached: set[str] = set()
    failures: dict[str, str] = {}  # the first report of each distinct failure
    scenarios = 0

    class Scenarios(admin_api.exclude(**BMC).as_state_machine()):  # type: ignore[misc]
        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)  # the record the stateful checks look back at
            if response.status_code not in (400, 404) and response.status_code < 500:
                reached.add(case.operation.label)

        def validate_response(self, response: Response, case: Case, *args, **kwargs) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as group:
                for failure in group.exceptions:
                    failures.setdefault(f"{case.operation.label}: {failure.title}", str(group))

    for attempt in range(RUNS):
        with contextlib.suppress(Flaky):
            seed(SEED + attempt)(Scenarios).run(
                settings=settings(
                    max_examples=SCENARIOS - scenarios,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
        if scenarios >= SCENARIOS:
            break
    assert not failures, "\n\n".join([*failures, *failures.values()])
    assert scenarios >= SCENARIOS
    assert sorted(LINKED - reached) == []
