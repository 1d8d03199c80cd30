"""The admin commands through the REST API (``--server``): the same views the local backend
returns, fetched from /api/v1 with an API token.

The standard library's urllib is enough for a handful of JSON calls, and keeps an operator's
machine free of another HTTP client. An API error (``{"error": ...}``) becomes the command's one
error sentence; a server that cannot be reached is named with what failed.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import quote, urlencode

import click

from pxe.cli.client_config import TOKEN_ENV, Remote, config_path
from pxe.store.bmc import BmcSettings
from pxe.store.rolls import RollRequest

API = "/api/v1"
# Power calls wait for a BMC, which may take most of a minute to answer.
TIMEOUT_S = 120.0


def _part(ref: str | int) -> str:
    """A reference as one path segment: a MAC's colons or a name's slash stay inside it."""
    return quote(str(ref), safe="")


class ApiClient:
    """JSON calls to one server's /api/v1 with a bearer token."""

    def __init__(self, remote: Remote, *, timeout: float = TIMEOUT_S) -> None:
        self.server = remote.server
        self._token = remote.token
        self._timeout = timeout

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.call("POST", path, body=body or {})

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.call("PATCH", path, body=body)

    def put(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.call("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); any failure is a ClickException."""
        shown = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self.server}{API}{path}" + (f"?{urlencode(shown)}" if shown else "")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refusal(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, socket.timeout | TimeoutError):
                reason = f"no answer within {self._timeout:g} s"
            elif isinstance(reason, OSError) and reason.strerror:
                reason = reason.strerror.lower()
            raise click.ClickException(
                f"cannot reach the xcp-provision server at {self.server}: {reason}"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise click.ClickException(
                f"{self.server} answered {method} {API}{path} with something other than JSON; "
                "is it an xcp-provision server?"
            ) from None

    def _refusal(self, method: str, path: str, exc: urllib.error.HTTPError) -> click.ClickException:
        try:
            error = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError, OSError):
            error = None
        if not isinstance(error, str):
            return click.ClickException(
                f"{self.server} answered {exc.code} {exc.reason} to {method} {API}{path}, "
                "not an xcp-provision API error; is --server the right URL?"
            )
        if exc.code == 401:
            return click.ClickException(
                f"{self.server} refused the API token ({error}); set {TOKEN_ENV} or 'token' in "
                f"{config_path()} to a valid one ('xcp-provision tokens create' on the server)"
            )
        return click.ClickException(error)


class RemoteBackend:
    """The admin operations as REST calls; each returns what the local backend returns."""

    remote = True

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    # hosts

    def list_hosts(
        self, *, state: str | None, pool: str | None, profile: str | None
    ) -> list[dict[str, Any]]:
        hosts: list[dict[str, Any]] = []
        page = 1000
        while True:  # the API pages at 1000; the CLI lists them all
            got = self.client.get(
                "/hosts", state=state, pool=pool, profile=profile, limit=page, offset=len(hosts)
            )["hosts"]
            hosts += got
            if len(got) < page:
                return hosts

    def add_host(self, **given: Any) -> dict[str, Any]:
        body = {k: v for k, v in given.items() if v}
        body["macs"] = list(given.get("macs") or ())
        return self.client.post("/hosts", body)

    def show_host(self, ref: str, *, events: int) -> dict[str, Any]:
        host = self.client.get(f"/hosts/{_part(ref)}")
        listed = self.client.get(f"/hosts/{_part(ref)}/events", limit=events)
        return {**host, "events": listed["events"]}

    def edit_host(self, ref: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.patch(f"/hosts/{_part(ref)}", dict(changes))

    def reinstall_host(self, ref: str, *, power: bool) -> dict[str, Any]:
        return self.client.post(f"/hosts/{_part(ref)}/reinstall", {"power": True} if power else {})

    def remove_host(self, ref: str) -> int:
        host_id = self.client.get(f"/hosts/{_part(ref)}")["id"]
        self.client.delete(f"/hosts/{host_id}")
        return host_id

    def host_events(self, ref: str, *, limit: int) -> list[dict[str, Any]]:
        return self.client.get(f"/hosts/{_part(ref)}/events", limit=limit)["events"]

    def set_bmc(self, ref: str, given: BmcSettings) -> dict[str, Any]:
        body = {k: v for k, v in asdict(given).items() if v is not None}
        return self.client.put(f"/hosts/{_part(ref)}/bmc", body)

    def remove_bmc(self, ref: str) -> None:
        self.client.delete(f"/hosts/{_part(ref)}/bmc")

    def power_status(self, ref: str, *, fresh: bool) -> dict[str, Any]:
        return self.client.get(f"/hosts/{_part(ref)}/power", fresh="1" if fresh else None)

    def power_action(self, ref: str, action: str) -> dict[str, Any]:
        return self.client.post(f"/hosts/{_part(ref)}/power", {"action": action})

    # rolling reinstalls

    def start_roll(self, request: RollRequest) -> dict[str, Any]:
        body = {**asdict(request), "hosts": list(request.hosts)}
        return self.client.post("/reinstalls", {k: v for k, v in body.items() if v is not None})

    def list_rolls(self, *, status: str | None) -> list[dict[str, Any]]:
        return self.client.get("/reinstalls", status=status)["reinstalls"]

    def show_roll(self, roll_id: int) -> dict[str, Any]:
        return self.client.get(f"/reinstalls/{roll_id}")

    # profiles

    def list_profiles(self) -> list[dict[str, Any]]:
        return self.client.get("/profiles")["profiles"]

    def show_profile(self, name: str) -> dict[str, Any]:
        profile = self.client.get(f"/profiles/{_part(name)}")
        return {**profile, "effective": self.client.get(f"/profiles/{_part(name)}/effective")}

    def create_profile(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.post("/profiles", {"name": name, **fields})

    def edit_profile(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.patch(f"/profiles/{_part(name)}", dict(fields))

    def delete_profile(self, name: str) -> None:
        self.client.delete(f"/profiles/{_part(name)}")

    def add_selector(self, name: str, field: str, pattern: str) -> dict[str, Any]:
        return self.client.post("/selectors", {"profile": name, "field": field, "pattern": pattern})

    # pools

    def list_pools(self) -> list[dict[str, Any]]:
        names = [p["name"] for p in self.client.get("/pools")["pools"]]
        return [self.show_pool(name) for name in names]

    def create_pool(self, name: str, *, force: bool, master: str | None) -> dict[str, Any]:
        if master is not None:
            raise click.UsageError(
                "pools create --master has no API equivalent yet: with --server, create the "
                "pool without it, or run the command with --data-dir on the server"
            )
        return self.client.post("/pools", {"name": name, "force": force})

    def show_pool(self, name: str) -> dict[str, Any]:
        return self.client.get(f"/pools/{_part(name)}")

    # audit

    def audit(self, *, since: str | None, limit: int) -> list[dict[str, Any]]:
        return self.client.get("/audit", since=since, limit=limit)["audit"]
