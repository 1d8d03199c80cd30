"""DNS settings: off when absent, loud when half-configured, secret only from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxe.config import load_settings
from pxe.dns.errors import DnsSettingsError
from pxe.dns.settings import DnsSettings, read_secret
from pxe.registration import dns_settings

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="


def _mapping(secret_file: Path, **extra: object) -> dict[str, object]:
    return {
        "server": "192.0.2.53",
        "forward_zone": "lab.example",
        "reverse_zones": "2.0.192.in-addr.arpa",
        "key_name": "xcp-provision",
        "secret_file": str(secret_file),
        **extra,
    }


def test_no_server_means_dns_updates_are_off() -> None:
    assert DnsSettings.from_mapping({}) is None
    assert DnsSettings.from_mapping({"server": "", "forward_zone": "x."}) is None


def test_a_server_without_zones_or_key_is_an_error() -> None:
    with pytest.raises(DnsSettingsError, match="lack forward_zone, reverse_zones, key_name"):
        DnsSettings.from_mapping({"server": "192.0.2.53", "secret_file": "/k"})


def test_zones_become_absolute_and_defaults_apply(tmp_path: Path) -> None:
    settings = DnsSettings.from_mapping(_mapping(tmp_path / "k"))
    assert settings is not None
    assert settings.forward_zone == "lab.example."
    assert settings.reverse_zones == ("2.0.192.in-addr.arpa.",)
    assert (settings.port, settings.algorithm, settings.ttl) == (53, "hmac-sha256", 300)


def test_reverse_zones_of_both_families_from_a_list_or_a_text(tmp_path: Path) -> None:
    zones = ["2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa.", "2.0.192.in-addr.arpa."]
    expected = ("2.0.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.")
    for given in (zones, ", ".join(zones)):
        settings = DnsSettings.from_mapping(_mapping(tmp_path / "k", reverse_zones=given))
        assert settings is not None
        assert settings.reverse_zones == expected


def test_a_reverse_zone_outside_the_arpa_trees_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DnsSettingsError, match=r"reverse zone lab\.example\. is not under"):
        DnsSettings.from_mapping(_mapping(tmp_path / "k", reverse_zones="lab.example"))
    with pytest.raises(DnsSettingsError, match="lack reverse_zones"):
        DnsSettings.from_mapping(_mapping(tmp_path / "k", reverse_zones=" , "))


def test_the_server_settings_name_reverse_zones_the_old_way_and_the_new(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        "[dns]\n"
        'server = "2001:db8::53"\n'
        'forward_zone = "lab.example."\n'
        'reverse_zone = "2.0.192.in-addr.arpa."\n'
        'reverse_zones = ["8.b.d.0.1.0.0.2.ip6.arpa.", "2.0.192.in-addr.arpa."]\n'
        'key_name = "xcp-provision"\n'
        f'key_file = "{tmp_path / "k"}"\n'
    )
    settings = dns_settings(load_settings(config, environ={}))
    assert settings is not None
    assert settings.reverse_zones == ("8.b.d.0.1.0.0.2.ip6.arpa.", "2.0.192.in-addr.arpa.")
    old = load_settings(environ={"XCP_PROVISION_DNS_REVERSE_ZONE": "2.0.192.in-addr.arpa"})
    assert old.dns_reverse_zone_names() == ("2.0.192.in-addr.arpa",)


def test_unknown_algorithm_and_bad_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DnsSettingsError, match="algorithm 'hmac-sha3'"):
        DnsSettings.from_mapping(_mapping(tmp_path / "k", algorithm="hmac-sha3"))
    with pytest.raises(DnsSettingsError, match="port 70000"):
        DnsSettings.from_mapping(_mapping(tmp_path / "k", port=70000))
    with pytest.raises(DnsSettingsError, match="invalid"):
        DnsSettings.from_mapping(_mapping(tmp_path / "k", port="fifty-three"))


def test_secret_read_from_a_bare_file_or_a_bind_key_block(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.write_text(SECRET + "\n")
    block = tmp_path / "block"
    block.write_text(
        f'key "xcp-provision" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'
    )
    assert read_secret(bare) == SECRET
    assert read_secret(block) == SECRET
    settings = DnsSettings.from_mapping(_mapping(block))
    assert settings is not None
    key = settings.tsig_key()
    assert key.name.to_text() == "xcp-provision."
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the TSIG secret file"), ("", "is empty"), ("not base64!!", "not base64")],
)
def test_unusable_secret_files_are_clear_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DnsSettingsError, match=message):
        read_secret(path)
