"""RFC 2136 updates with TSIG against a real BIND 9 started on loopback by the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dns.query
import dns.update
import pytest

from pxe.dns.errors import (
    DnsAuthError,
    DnsConflictError,
    DnsNameError,
    DnsRefusedError,
    DnsUnreachableError,
)
from pxe.dns.settings import DnsSettings
from pxe.dns.update import DnsUpdater, Record, RecordStatus
from tests.support.bind import (
    STATIC_ADDRESS,
    STATIC_NAME,
    STATIC_PTR_ADDRESS,
    STATIC_PTR_TARGET,
    BindServer,
    running_bind,
)


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    with running_bind(tmp_path_factory.mktemp("bind")) as server:
        yield server


@pytest.fixture
def settings(bind: BindServer) -> DnsSettings:
    loaded = DnsSettings.from_mapping(bind.settings_mapping())
    assert loaded is not None
    return loaded


def test_add_host_creates_a_and_ptr(bind: BindServer, settings: DnsSettings) -> None:
    result = DnsUpdater(settings).add_host("node01", "192.0.2.11")
    assert [status for _, status in result.done] == [RecordStatus.ADDED, RecordStatus.ADDED]
    assert result.problems == ()
    assert bind.query("node01.xcp.test.", "A") == ["192.0.2.11"]
    assert bind.query("11.2.0.192.in-addr.arpa.", "PTR") == ["node01.xcp.test."]


def test_adding_the_same_host_again_is_idempotent(bind: BindServer, settings: DnsSettings) -> None:
    updater = DnsUpdater(settings)
    updater.add_host("node02.xcp.test", "192.0.2.12")
    again = updater.add_host("node02.xcp.test.", "192.0.2.12")
    assert [status for _, status in again.done] == [RecordStatus.PRESENT, RecordStatus.PRESENT]
    assert bind.query("node02.xcp.test.", "A") == ["192.0.2.12"]


def test_a_name_held_by_another_address_is_a_conflict_and_not_overwritten(
    bind: BindServer, settings: DnsSettings
) -> None:
    result = DnsUpdater(settings).add_host(STATIC_NAME, "192.0.2.13")
    (conflict,) = result.problems
    assert conflict.existing == [f"A {STATIC_ADDRESS}"]
    message = str(conflict)
    for word in (f"{bind.host}:{bind.port}", "xcp.test.", STATIC_ADDRESS, "192.0.2.13"):
        assert word in message
    # The PTR would point at a name that resolves elsewhere: not attempted.
    assert [str(record) for record in result.skipped] == [
        "13.2.0.192.in-addr.arpa. PTR taken.xcp.test."
    ]
    assert bind.query("taken.xcp.test.", "A") == [STATIC_ADDRESS]
    assert bind.query("13.2.0.192.in-addr.arpa.", "PTR") == []


def test_a_cname_at_the_name_is_a_conflict(bind: BindServer, settings: DnsSettings) -> None:
    result = DnsUpdater(settings).add_host("alias", "192.0.2.14")
    (conflict,) = result.problems
    assert conflict.existing[0] == "CNAME taken.xcp.test."


def test_an_address_whose_ptr_names_another_host_is_a_conflict(
    bind: BindServer, settings: DnsSettings
) -> None:
    result = DnsUpdater(settings).add_host("node05", STATIC_PTR_ADDRESS)
    assert [status for _, status in result.done] == [RecordStatus.ADDED]
    (conflict,) = result.problems
    assert conflict.rdtype == "PTR"
    assert conflict.existing == [f"PTR {STATIC_PTR_TARGET}"]
    assert bind.query("201.2.0.192.in-addr.arpa.", "PTR") == [STATIC_PTR_TARGET]
    assert bind.query("node05.xcp.test.", "A") == [STATIC_PTR_ADDRESS]


def test_ensure_raises_a_typed_conflict(settings: DnsSettings) -> None:
    record = Record("xcp.test.", "taken.xcp.test.", "A", "192.0.2.99")
    with pytest.raises(DnsConflictError, match=r"taken\.xcp\.test\. already has A 192\.0\.2\.200"):
        DnsUpdater(settings).ensure(record)


def test_remove_host_deletes_only_its_records(bind: BindServer, settings: DnsSettings) -> None:
    updater = DnsUpdater(settings)
    updater.add_host("node06", "192.0.2.16")
    # A second address at the same name, added by someone else (no prerequisites).
    message = dns.update.UpdateMessage("xcp.test.", keyring=settings.tsig_key())
    message.add("node06.xcp.test.", 300, "A", "192.0.2.116")
    assert dns.query.tcp(message, bind.host, port=bind.port, timeout=5).rcode() == 0
    updater.remove_host("node06", "192.0.2.16")
    assert bind.query("node06.xcp.test.", "A") == ["192.0.2.116"]
    assert bind.query("16.2.0.192.in-addr.arpa.", "PTR") == []
    updater.remove_host("node06", "192.0.2.16")  # removing twice is harmless


def test_ipv6_gets_an_aaaa_record_and_its_ptr_in_the_ip6_arpa_zone(
    bind: BindServer, settings: DnsSettings
) -> None:
    result = DnsUpdater(settings).add_host("node07", "2001:db8::7")
    ptr = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
    assert [(str(record), record.zone, status) for record, status in result.done] == [
        ("node07.xcp.test. AAAA 2001:db8::7", "xcp.test.", RecordStatus.ADDED),
        (f"{ptr} PTR node07.xcp.test.", bind.reverse6_zone, RecordStatus.ADDED),
    ]
    assert result.problems == ()
    assert bind.query("node07.xcp.test.", "AAAA") == ["2001:db8::7"]
    assert bind.query(ptr, "PTR") == ["node07.xcp.test."]
    updater = DnsUpdater(settings)
    assert [status for _, status in updater.add_host("node07", "2001:db8::7").done] == [
        RecordStatus.PRESENT,
        RecordStatus.PRESENT,
    ]
    updater.remove_host("node07", "2001:db8::7")
    assert bind.query(ptr, "PTR") == []


def test_an_address_outside_every_reverse_zone_keeps_its_forward_record(
    bind: BindServer, settings: DnsSettings
) -> None:
    ipv4_only = DnsUpdater(replace(settings, reverse_zones=(bind.reverse_zone,)))
    result = ipv4_only.add_host("node17", "2001:db8::17")
    assert [str(record) for record, _ in result.done] == ["node17.xcp.test. AAAA 2001:db8::17"]
    (problem,) = result.problems
    assert isinstance(problem, DnsNameError)
    assert str(problem) == (
        f"DNS server {bind.host}:{bind.port}, zone 2.0.192.in-addr.arpa.: address 2001:db8::17 is"
        " outside every reverse zone; add the ip6.arpa zone holding it to dns_reverse_zones"
    )
    assert bind.query("node17.xcp.test.", "AAAA") == ["2001:db8::17"]


def test_the_most_specific_reverse_zone_holds_the_ptr(settings: DnsSettings) -> None:
    wide = replace(settings, reverse_zones=("0.192.in-addr.arpa.", "2.0.192.in-addr.arpa."))
    updater = DnsUpdater(wide)
    record = updater.reverse_record(updater.forward_record("node18", "192.0.2.18"))
    assert (record.zone, record.name) == ("2.0.192.in-addr.arpa.", "18.2.0.192.in-addr.arpa.")
    elsewhere = updater.reverse_record(updater.forward_record("node19", "192.0.3.19"))
    assert elsewhere.zone == "0.192.in-addr.arpa."


def test_a_name_outside_the_zone_is_refused_before_sending(settings: DnsSettings) -> None:
    with pytest.raises(DnsNameError, match=r"host name node08\.example\.org is outside"):
        DnsUpdater(settings).add_host("node08.example.org", "192.0.2.18")


def test_a_wrong_secret_is_refused_and_reported(
    bind: BindServer, settings: DnsSettings, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    updater = DnsUpdater(replace(settings, secret_file=wrong))
    with pytest.raises(DnsAuthError) as caught:
        updater.add_host("node09", "192.0.2.19")
    assert caught.value.tsig_error == "BADSIG"
    assert f"{bind.host}:{bind.port}" in str(caught.value)
    assert "zone xcp.test." in str(caught.value)
    assert bind.query("node09.xcp.test.", "A") == []


def test_an_unknown_key_name_is_refused_and_reported(
    bind: BindServer, settings: DnsSettings
) -> None:
    with pytest.raises(DnsAuthError, match="TSIG key intruder rejected \\(BADKEY\\)"):
        DnsUpdater(replace(settings, key_name="intruder")).add_host("node10", "192.0.2.20")
    assert bind.query("node10.xcp.test.", "A") == []


def test_a_zone_the_server_does_not_serve_is_refused(settings: DnsSettings) -> None:
    updater = DnsUpdater(replace(settings, forward_zone="elsewhere.test."))
    with pytest.raises(DnsRefusedError) as caught:
        updater.add_host("node11", "192.0.2.21")
    assert caught.value.rcode == "NOTAUTH"
    assert "zone elsewhere.test." in str(caught.value)


def test_no_server_is_reported_as_unreachable(settings: DnsSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    updater = DnsUpdater(replace(settings, port=closed_port, timeout=2))
    with pytest.raises(DnsUnreachableError, match=f"127.0.0.1:{closed_port}"):
        updater.add_host("node12", "192.0.2.22")
