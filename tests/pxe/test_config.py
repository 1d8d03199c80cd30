"""Settings: defaults, then TOML, then XCP_PROVISION_* environment, then explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pxe.config import ConfigError, Settings, load_settings


def test_defaults_put_everything_under_data(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.data_dir == Path("./data")
    assert settings.http_port == 8080
    assert settings.database.startswith("sqlite:///")
    assert settings.database.endswith("data/inventory.sqlite3")


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        'data_dir = "/srv/xcp"\nhttp_port = 9000\ndhcp_enabled = true\n'
        '[dns]\nserver = "192.0.2.53"\nforward_zone = "lab.test."\n'
    )
    env = {"XCP_PROVISION_HTTP_PORT": "9100", "XCP_PROVISION_DHCP_ENABLED": "no", "HOME": "/x"}
    settings = load_settings(config, environ=env, bind="127.0.0.1", tftp_port=None)
    assert settings.data_dir == Path("/srv/xcp")
    assert settings.http_port == 9100  # environment beats the file
    assert settings.dhcp_enabled is False
    assert settings.dns_server == "192.0.2.53"  # a TOML table flattens to a prefix
    assert settings.dns_forward_zone == "lab.test."
    assert settings.bind == "127.0.0.1"
    assert settings.tftp_port == 69  # None overrides are ignored


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("retry_seconds = 7\n")
    settings = load_settings(environ={"XCP_PROVISION_CONFIG": str(config)})
    assert settings.retry_seconds == 7


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"XCP_PROVISION_HTTP_PORT": "eighty"}, "http_port"),
        ({"XCP_PROVISION_NO_SUCH_THING": "1"}, "unknown setting 'no_such_thing'"),
        ({"XCP_PROVISION_DHCP_ENABLED": "maybe"}, "not a boolean"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


def test_bad_toml_is_reported_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("http_port = = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_settings(config, environ={})


def test_base_url_prefers_public_url_then_request() -> None:
    assert Settings(public_url="http://pxe:80/").base_url("http://x/") == "http://pxe:80"
    assert Settings().base_url("http://10.0.0.1:8080/") == "http://10.0.0.1:8080"
    assert Settings(bind="10.1.2.3", http_port=81).base_url() == "http://10.1.2.3:81"


def test_settings_travel_to_worker_processes_through_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, http_port=9000, dhcp_enabled=False, http_workers=3, dns_server="::1"
    )
    assert load_settings(environ=settings.as_environment()) == settings
    assert settings.workers() == 3
    assert Settings(http_workers=0).workers() == (os.cpu_count() or 1)
