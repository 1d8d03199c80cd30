"""Boot decisions from the inventory, and their iPXE rendering."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from pxe.boot.decide import PendingBoot, decide_and_record, decide_from_read, decide_in_session
from pxe.boot.identity import Identity
from pxe.boot.plan import BootAction, BootPlan
from pxe.boot.render.ipxe import chain_script, render_ipxe
from pxe.config import Settings
from pxe.db.session import Database
from pxe.store import hosts, profiles, selectors
from pxe.store.errors import InvalidInputError
from pxe.store.events import list_events
from pxe.store.lifecycle import State
from pxe.store.tokens import host_for_install_token

MAC = "52:54:00:12:34:56"


def _decide(
    database: Database, settings: Settings, remote_addr: str | None = None, **identity
) -> BootPlan:
    with database.scope() as session:
        ident = Identity.clean(**{"mac": MAC, **identity})
        return decide_in_session(session, settings, ident, remote_addr=remote_addr)


def test_unknown_mac_is_discovered_and_waits(database: Database, settings: Settings) -> None:
    plan = _decide(
        database,
        settings,
        mac="52-54-00-12-34-56",
        uuid="4C4C4544-0042-3510-8052-B4C04F564433",
        serial="SN1",
        arch="x86_64",
        remote_addr="192.0.2.7",
    )
    assert plan.action == BootAction.WAIT
    assert plan.retry_seconds == settings.retry_seconds
    assert "assign it a profile" in plan.reason
    with database.scope() as s:
        host = hosts.get_host(s, MAC)
        assert host.state == State.DISCOVERED
        assert host.smbios_uuid == "4c4c4544-0042-3510-8052-b4c04f564433"
        assert (host.serial, host.arch) == ("SN1", "x86_64")
        assert host.facts["first_seen_from"] == "192.0.2.7"
        assert [e.kind for e in list_events(s, host=host)] == ["state", "discovered"]
    _decide(database, settings)  # a second request records no second host or discovery
    with database.scope() as s:
        assert len(hosts.list_hosts(s)) == 1
        assert [e.kind for e in list_events(s)] == ["state", "discovered"]


def test_firmware_placeholder_identities_are_ignored(
    database: Database, settings: Settings
) -> None:
    _decide(
        database, settings, uuid="00000000-0000-0000-0000-000000000000", serial="Default string"
    )
    _decide(
        database,
        settings,
        mac="52:54:00:00:00:02",
        uuid="00000000-0000-0000-0000-000000000000",
        serial="To Be Filled By O.E.M.",
    )
    with database.scope() as s:
        assert len(hosts.list_hosts(s)) == 2  # not merged into one host by the junk identity
        assert all(h.smbios_uuid is None and h.serial is None for h in hosts.list_hosts(s))


def test_malformed_mac_is_refused(database: Database, settings: Settings) -> None:
    with pytest.raises(InvalidInputError):
        _decide(database, settings, mac="not-a-mac")


def test_host_known_by_serial_gains_the_booting_mac(database: Database, settings: Settings) -> None:
    with database.scope() as s:
        hosts.add_host(s, serial="RACK7-U12")
    _decide(database, settings, serial="RACK7-U12")
    with database.scope() as s:
        (host,) = hosts.list_hosts(s)
        assert host.mac_list == [MAC]


def test_ready_host_gets_the_installer(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    with database.scope() as s:
        profiles.create_profile(
            s, "demo", release="demo", template="fresh-dhcp", kernel_args="nomodeset"
        )
        hosts.add_host(s, macs=[MAC], hostname="node1", profile="demo")
    plan = _decide(database, settings)
    assert plan.action == BootAction.INSTALL
    assert plan.kernel_url == "http://pxe.test:8080/releases/demo/installer-vmlinuz"
    assert plan.initrd_urls == ("http://pxe.test:8080/releases/demo/installer-initrd.img",)
    words = plan.cmdline.split()
    assert "console=ttyS0,115200" in words and "console=tty0" in words
    assert "nomodeset" in words and "atexit=reboot" in words
    (answer,) = [w for w in words if w.startswith("answerfile=")]
    token = re.fullmatch(r"answerfile=http://pxe\.test:8080/answerfile/1\?token=(\S+)", answer)[1]
    second = _decide(database, settings)
    with database.scope() as s:
        assert host_for_install_token(s, token) is None  # each installer boot gets a new token
        new_token = second.cmdline.split("token=")[1].split()[0]
        assert host_for_install_token(s, new_token).hostname == "node1"


def test_selector_gives_a_discovered_host_its_profile(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    with database.scope() as s:
        profile = profiles.create_profile(s, "rack", release="demo", template="fresh-dhcp")
        selectors.add_selector(s, profile, "mac", "52:54:00:12:*")
    plan = _decide(database, settings)
    assert plan.action == BootAction.INSTALL
    with database.scope() as s:
        host = hosts.get_host(s, MAC)
        assert (host.state, host.profile.name) == (State.READY, "rack")
        assert "selector matched profile rack" in host.state_reason


@pytest.mark.parametrize("state", [State.INSTALLED, State.REGISTERED, State.IN_POOL])
def test_installed_hosts_boot_their_disk(
    database: Database, settings: Settings, state: State
) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo")
        hosts.add_host(s, macs=[MAC], profile="p", state=state)
    assert _decide(database, settings).action == BootAction.LOCAL


def test_failed_host_waits_for_an_operator(database: Database, settings: Settings) -> None:
    """Once its automatic retries are used up (tests/pxe/test_install_watchdog.py)."""
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo")
        host = hosts.add_host(s, macs=[MAC], profile="p", state=State.FAILED)
        host.state_reason = "disk sda not found"
        host.install_attempts = settings.max_install_attempts
    plan = _decide(database, settings)
    assert plan.action == BootAction.WAIT
    assert "disk sda not found" in plan.reason and "reinstall" in plan.reason


def test_missing_release_waits_and_says_so(database: Database, settings: Settings) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="nowhere", template="fresh-dhcp")
        hosts.add_host(s, macs=[MAC], profile="p")
    plan = _decide(database, settings)
    assert plan.action == BootAction.WAIT
    assert "release 'nowhere' is not in" in plan.reason


def test_ipxe_install_script() -> None:
    plan = BootPlan(
        BootAction.INSTALL,
        kernel_url="http://s/k",
        initrd_urls=("http://s/i",),
        cmdline="answerfile=http://s/a?token=t console=tty0",
        reason="ready",
    )
    script = render_ipxe(plan, again_url="http://s/boot/ipxe?mac=aa")
    lines = script.splitlines()
    assert lines[0] == "#!ipxe"
    assert (
        "kernel http://s/k answerfile=http://s/a?token=t console=tty0 initrd=i || goto failed"
        in lines
    )
    assert "initrd http://s/i || goto failed" in lines
    assert lines[-1] == "chain --replace --autofree http://s/boot/ipxe?mac=aa"


def test_ipxe_wait_and_local_scripts_keep_reasons_literal() -> None:
    wait = render_ipxe(BootPlan(BootAction.WAIT, retry_seconds=9, reason="x ${evil} && y\nz"))
    assert "${evil}" not in wait and "&&" not in wait.split("\n", 2)[1]
    assert "sleep 9" in wait and wait.rstrip().endswith("chain --replace --autofree ${filename}")
    local = render_ipxe(BootPlan(BootAction.LOCAL, reason="installed"))
    assert "sanboot --no-describe --drive 0x80 || exit" in local


def test_chain_script_asks_again_with_identity() -> None:
    assert chain_script("http://10.0.0.1:8080") == (
        "#!ipxe\nchain http://10.0.0.1:8080/boot/ipxe?mac=${net0/mac}&uuid=${uuid}"
        "&serial=${serial:uristring}&arch=${buildarch}\n"
    )


def test_lookups_that_change_nothing_do_not_wait_for_writers(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    """An installed host, a failed one and an unassigned one are answered while another
    connection holds SQLite's write lock; a ready host (a token to issue) waits for it."""
    macs = {state: f"52:54:00:00:00:{i:02x}" for i, state in enumerate(State, 1)}
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        for state, mac in macs.items():
            profile = None if state == State.DISCOVERED else "p"
            host = hosts.add_host(s, macs=[mac], profile=profile, state=state)
            if state == State.FAILED:  # retries used up: it waits (a retry is a write)
                host.install_attempts = settings.max_install_attempts
    blocker = sqlite3.connect(settings.data_dir / "inventory.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    impatient = Database(settings.database)
    with impatient.engine.connect() as conn:  # every pooled connection gives up at once
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        for state in (State.INSTALLED, State.IN_POOL, State.FAILED, State.DISCOVERED):
            plan = decide_and_record(impatient, settings, mac=macs[state])
            assert plan.action != BootAction.INSTALL, state
        with pytest.raises(OperationalError, match="locked"):
            decide_and_record(impatient, settings, mac=macs[State.READY])
        with pytest.raises(OperationalError, match="locked"):  # new MAC: a host to record
            decide_and_record(impatient, settings, mac="52:54:00:99:99:99")
    finally:
        blocker.rollback()
        blocker.close()
        impatient.dispose()
    assert decide_and_record(database, settings, mac=macs[State.READY]).action == BootAction.INSTALL


def test_a_ready_host_is_planned_from_a_read_and_its_token_stored_only_if_unchanged(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        host_id = hosts.add_host(s, macs=[MAC], profile="p").id
    pending = decide_from_read(database, settings, Identity.clean(mac=MAC))
    again = decide_from_read(database, settings, Identity.clean(mac=MAC))
    assert isinstance(pending, PendingBoot) and isinstance(again, PendingBoot)
    assert pending.plan.action == BootAction.INSTALL
    token = pending.plan.cmdline.split("token=")[1].split()[0]
    with database.scope() as s:
        assert host_for_install_token(s, token) is None  # nothing written by the read
    assert pending.store(database)
    assert not again.store(database)  # the host changed since `again` was read: no overwrite
    with database.scope() as s:
        assert host_for_install_token(s, token).id == host_id
        hosts.set_state(s, hosts.get_host(s, host_id), State.INSTALLED, "build-done")
    assert decide_and_record(database, settings, mac=MAC).action == BootAction.LOCAL


def test_a_host_finished_between_read_and_write_is_decided_again(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        host_id = hosts.add_host(s, macs=[MAC], profile="p").id
    pending = decide_from_read(database, settings, Identity.clean(mac=MAC))
    with database.scope() as s:
        hosts.set_state(s, hosts.get_host(s, host_id), State.INSTALLED, "build-done")
    assert not pending.store(database)
    with database.scope() as s:
        assert hosts.get_host(s, host_id).install_token_hash is None


UUID = "4c4c4544-0042-3510-8052-b4c04f564433"


def test_a_first_boot_reporting_its_identity_is_one_update_of_the_host_row(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    """What iPXE reports (UUID, serial, architecture) rides along in the token's UPDATE; a
    host that boots its disk records it with one UPDATE too."""
    installed_mac = "52:54:00:00:00:99"
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        ready_id = hosts.add_host(s, macs=[MAC], profile="p").id
        installed = hosts.add_host(s, macs=[installed_mac], profile="p", state=State.INSTALLED)
        installed_id = installed.id
    ready_ident = Identity.clean(mac=MAC, uuid=UUID, serial="SN1", arch="x86_64")
    ready = decide_from_read(database, settings, ready_ident)
    installed = decide_from_read(database, settings, Identity.clean(installed_mac, arch="x86_64"))
    assert isinstance(ready, PendingBoot) and ready.token_hash is not None
    assert ready.reported == {"smbios_uuid": UUID, "serial": "SN1", "arch": "x86_64"}
    assert isinstance(installed, PendingBoot) and installed.token_hash is None
    assert installed.plan.action == BootAction.LOCAL
    assert ready.store(database) and installed.store(database)
    with database.scope() as s:
        host = hosts.get_host(s, ready_id)
        assert (host.smbios_uuid, host.serial, host.arch) == (UUID, "SN1", "x86_64")
        token = ready.plan.cmdline.split("token=")[1].split()[0]
        assert host_for_install_token(s, token).id == ready_id
        assert hosts.get_host(s, installed_id).arch == "x86_64"
    # Nothing new the second time: nothing to write.
    again = decide_from_read(database, settings, Identity.clean(mac=installed_mac, arch="x86_64"))
    assert isinstance(again, BootPlan) and again.action == BootAction.LOCAL


def test_a_reported_serial_that_a_selector_matches_is_decided_in_a_write(
    database: Database, settings: Settings, demo_release: Path
) -> None:
    """A discovered host's serial, first reported now, makes a selector match: that assigns a
    profile, which only the full write path does."""
    with database.scope() as s:
        profile = profiles.create_profile(s, "rack", release="demo", template="fresh-dhcp")
        selectors.add_selector(s, profile, "serial", "RACK-*")
        hosts.add_host(s, macs=[MAC])
    assert decide_from_read(database, settings, Identity.clean(mac=MAC, serial="RACK-07")) is None
    assert decide_and_record(database, settings, mac=MAC, serial="RACK-07").action == (
        BootAction.INSTALL
    )
