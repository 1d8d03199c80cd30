"""The API's edges, as an OpenAPI fuzzer probes them: wrong JSON types, missing or empty bodies,
a body sent before the token, a method a route does not take. Each answer is a 4xx saying what
to fix, never a 500 and never a silent change."""

from __future__ import annotations

import pytest

from pxe.store import hosts, profiles, tokens

MAC = "52:54:00:12:34:56"
OTHER_MAC = "52:54:00:12:34:57"


@pytest.fixture
def host(client, auth) -> dict:
    assert client.post("/api/v1/pools", json={"name": "rack1"}, headers=auth).status_code == 201
    created = client.post(
        "/api/v1/profiles", json={"name": "demo", "release": "demo"}, headers=auth
    )
    assert created.status_code == 201, created.json
    response = client.post(
        "/api/v1/hosts",
        json={"mac": MAC, "hostname": "node1", "serial": "S1", "pool": "rack1"},
        headers=auth,
    )
    assert response.status_code == 201, response.json
    return response.json


def _refused_naming(response, field: str, expected: str) -> None:
    assert response.status_code == 400, (response.status_code, response.json)
    assert set(response.json) == {"error"}
    error = response.json["error"]
    assert f"'{field}' must be" in error and expected in error, error


# Wrong JSON types for a new host: each once answered 500 or was stored as something else
# ({"serial": [1]} became the serial "[1]", {"profile": true} the profile with id 1).
@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ({"macs": None}, "macs", "a list of MAC address strings"),
        ({"macs": MAC}, "macs", "a list of MAC address strings"),
        ({"macs": [1]}, "macs", "a list of MAC address strings"),
        ({"mac": 5}, "mac", "a MAC address string"),
        ({"mac": None}, "mac", "a MAC address string"),
        ({"mac": MAC, "hostname": 5}, "hostname", "a host name string"),
        ({"mac": MAC, "uuid": ["x"]}, "uuid", "an SMBIOS UUID string"),
        ({"mac": MAC, "serial": [1]}, "serial", "a serial number string"),
        ({"serial": True}, "serial", "a serial number string"),
        ({"mac": MAC, "profile": []}, "profile", "a profile name"),
        ({"mac": MAC, "profile": True}, "profile", "a profile name"),
        ({"mac": MAC, "pool": {}}, "pool", "a pool name"),
        ({"mac": MAC, "facts": "x"}, "facts", "an object"),
        ({"mac": MAC, "facts": []}, "facts", "an object"),
    ],
)
def test_add_host_refuses_wrong_json_types(client, auth, body, field, expected) -> None:
    _refused_naming(client.post("/api/v1/hosts", json=body, headers=auth), field, expected)
    assert client.get("/api/v1/hosts", headers=auth).json["hosts"] == []


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ({"macs": None}, "macs", "a list of MAC address strings"),
        ({"macs": 5}, "macs", "a list of MAC address strings"),
        ({"macs": OTHER_MAC}, "macs", "a list of MAC address strings"),
        ({"serial": []}, "serial", "a serial number string"),
        ({"pool": []}, "pool", "a pool name"),
        ({"profile": 1}, "profile", "a profile name"),
        ({"facts": None}, "facts", "an object"),
    ],
)
def test_edit_host_refuses_wrong_json_types(client, auth, host, body, field, expected) -> None:
    _refused_naming(client.patch("/api/v1/hosts/node1", json=body, headers=auth), field, expected)
    after = client.get("/api/v1/hosts/node1", headers=auth).json
    assert after["updated_at"] == host["updated_at"]
    assert (after["macs"], after["serial"], after["pool"]) == ([MAC], "S1", "rack1")


def test_null_still_clears_what_can_be_cleared(client, auth, host) -> None:
    cleared = client.patch(
        "/api/v1/hosts/node1", json={"hostname": None, "pool": None}, headers=auth
    )
    assert cleared.status_code == 200, cleared.json
    assert (cleared.json["hostname"], cleared.json["pool"]) == (None, None)


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "expected"),
    [
        ("post", "/api/v1/profiles", {"name": "p", "parent": []}, "parent", "a profile name"),
        ("post", "/api/v1/profiles", {"name": 5}, "name", "a profile name"),
        ("post", "/api/v1/profiles", {"name": "p", "pool": {}}, "pool", "a pool name"),
        ("patch", "/api/v1/profiles/demo", {"parent": []}, "parent", "a profile name"),
        ("patch", "/api/v1/profiles/demo", {"pool": {}}, "pool", "a pool name"),
        ("patch", "/api/v1/profiles/demo", {"variables": []}, "variables", "an object"),
        ("patch", "/api/v1/profiles/demo", {"kernel_args": 1}, "kernel_args", "a string"),
        ("post", "/api/v1/pools", {"name": []}, "name", "a pool name"),
        ("post", "/api/v1/pools", {"name": 5}, "name", "a pool name"),
        (
            "post",
            "/api/v1/selectors",
            {"profile": 1, "field": "mac", "pattern": "*"},
            "profile",
            "a profile name",
        ),
        (
            "post",
            "/api/v1/selectors",
            {"profile": "demo", "field": "mac", "pattern": 5},
            "pattern",
            "a wildcard pattern string",
        ),
    ],
)
def test_other_resources_refuse_wrong_json_types(
    client, auth, host, method, path, body, field, expected
) -> None:
    response = getattr(client, method)(path, json=body, headers=auth)
    _refused_naming(response, field, expected)
    demo = client.get("/api/v1/profiles/demo", headers=auth).json
    assert (demo["parent"], demo["pool"], demo["variables"]) == (None, None, {})


# --- Bug 2: install reports check the token before the body ----------------------------------


@pytest.mark.parametrize("path", ["/api/v1/installs/events", "/api/v1/installs/failed"])
@pytest.mark.parametrize("body", ["[]", "{}", '{"step": 5, "reason": 5}', "not json"])
def test_install_reports_check_the_token_before_the_body(client, path, body) -> None:
    json_headers = {"Content-Type": "application/json"}
    anonymous = client.post(path, data=body, headers=json_headers)
    assert anonymous.status_code == 401, anonymous.json
    assert "Bearer" in anonymous.json["error"]
    forged = client.post(path, data=body, headers={**json_headers, "Authorization": "Bearer x"})
    assert forged.status_code == 403, forged.json


@pytest.mark.parametrize("path", ["/api/v1/installs/events", "/api/v1/installs/failed"])
def test_a_valid_install_token_with_a_bad_body_is_still_a_400(client, database, path) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        token = tokens.issue_install_token(hosts.add_host(s, macs=[MAC], profile="p"))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in ("[]", "{}", '{"step": 5, "reason": 5}'):
        response = client.post(path, data=body, headers=headers)
        assert response.status_code == 400, (body, response.json)
    with database.scope() as s:
        assert hosts.get_host(s, MAC).state == "ready"


# --- Bug 3: every 405 says which methods the route takes ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/api/v1/hosts", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("put", "/api/v1/hosts/node1", {"GET", "HEAD", "OPTIONS", "PATCH", "DELETE"}),
        ("get", "/api/v1/installs/done", {"OPTIONS", "POST"}),
        ("post", "/healthz", {"GET", "HEAD", "OPTIONS"}),
        ("delete", "/ui/login", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("post", "/boot/ipxe", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_405_lists_the_allowed_methods(client, auth, method, path, allowed) -> None:
    response = getattr(client, method)(path, headers=auth)
    assert response.status_code == 405
    assert "Allow" in response.headers, dict(response.headers)
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.is_json and "error" in response.json


# --- Bug 4: a PATCH needs a JSON object with something to change -------------------------------


@pytest.mark.parametrize("path", ["/api/v1/hosts/node1", "/api/v1/profiles/demo"])
@pytest.mark.parametrize("body", [None, "", "{}", "[]", '"x"', "null", "3", "{not json"])
def test_patch_needs_an_object_with_a_field(client, auth, host, path, body) -> None:
    before = client.get(path, headers=auth).json
    headers = {**auth, "Content-Type": "application/json"}
    response = client.patch(path, data=body, headers=headers)
    assert response.status_code == 400, (response.status_code, response.json)
    assert "a JSON object with at least one field" in response.json["error"]
    assert client.get(path, headers=auth).json["updated_at"] == before["updated_at"]


def test_openapi_says_patch_needs_a_non_empty_object(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    patches = [(path, item["patch"]) for path, item in spec["paths"].items() if "patch" in item]
    assert {path for path, _ in patches} == {"/api/v1/hosts/{ref}", "/api/v1/profiles/{name}"}
    bodies = {}
    for path, op in patches:
        body = op["requestBody"]
        assert body["required"] is True, path
        ref = body["content"]["application/json"]["schema"]["$ref"]
        bodies[path] = schema = schemas[ref.rsplit("/", 1)[1]]
        assert schema.get("minProperties") == 1, path
        assert schema.get("additionalProperties") is False, path
        assert "400" in op["responses"], path
    host_changes = bodies["/api/v1/hosts/{ref}"]["properties"]
    assert set(host_changes) == set(hosts.EDITABLE)
    assert host_changes["macs"]["type"] == "array"  # not nullable: null is a 400
    assert set(bodies["/api/v1/profiles/{name}"]["properties"]) == set(profiles.FIELDS)


def test_a_query_parameter_the_call_does_not_take_is_refused(client, auth) -> None:
    misspelt = client.get("/api/v1/hosts?stat=failed", headers=auth)
    assert misspelt.status_code == 400
    assert "'stat'" in misspelt.get_json()["error"] and "state" in misspelt.get_json()["error"]
    assert client.get("/api/v1/hosts?state=failed", headers=auth).status_code == 200
    assert client.get("/api/v1/events?limit=5&kind=state", headers=auth).status_code == 200
    assert client.get("/api/v1/events?host=1&x=1", headers=auth).status_code == 400
