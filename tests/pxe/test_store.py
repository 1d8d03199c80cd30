"""The inventory's service functions, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import ipaddress

import pytest

from pxe.db.session import Database
from pxe.store import hosts, pools, profiles, selectors, tokens
from pxe.store.errors import ConflictError, InvalidInputError, NotFoundError
from pxe.store.events import list_events, record_event
from pxe.store.lifecycle import State, TransitionError
from pxe.store.macs import normalise_mac, slaac_address


@pytest.mark.parametrize(
    "spelling",
    [
        "52:54:00:AB:cd:01",
        "52-54-00-ab-cd-01",
        "525400abcd01",
        "5254.00ab.cd01",
        " 52:54:00:ab:cd:01 ",
    ],
)
def test_mac_spellings_normalise(spelling: str) -> None:
    assert normalise_mac(spelling) == "52:54:00:ab:cd:01"


@pytest.mark.parametrize("bad", ["", "52:54:00:ab:cd", "52:54:00:ab:cd:zz", "52:54-00:ab:cd:01"])
def test_malformed_mac_is_named(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a MAC address"):
        normalise_mac(bad)


def test_slaac_address_is_the_prefix_and_the_macs_modified_eui64() -> None:
    """RFC 4291's appendix A: ff:fe in the middle and the universal/local bit flipped, so a
    locally administered MAC (02 set) gives an identifier with it clear, and the reverse."""
    prefix = ipaddress.IPv6Network("2001:db8::/64")
    assert str(slaac_address(prefix, "52-54-00-AB-CD-01")) == "2001:db8::5054:ff:feab:cd01"
    assert str(slaac_address(prefix, "00:16:3e:12:34:56")) == "2001:db8::216:3eff:fe12:3456"
    with pytest.raises(ValueError, match="/64"):
        slaac_address(ipaddress.IPv6Network("2001:db8:6::/56"), "00:16:3e:12:34:56")


def test_hosts_add_find_edit_remove(any_database: Database) -> None:
    with any_database.scope() as s:
        profiles.create_profile(s, "base", release="demo", template="fresh-dhcp")
        host = hosts.add_host(s, macs=["52-54-00-00-00-01"], hostname="Node1", profile="base")
        assert host.state == State.READY and host.hostname == "node1"
        bare = hosts.add_host(s, serial="SN-42")
        assert bare.state == State.DISCOVERED
        host_id = host.id
    with any_database.scope() as s:
        assert hosts.get_host(s, "52:54:00:00:00:01").id == host_id
        assert hosts.get_host(s, str(host_id)).hostname == "node1"
        assert hosts.get_host(s, "node1").id == host_id
        assert hosts.find_host(s, serial="SN-42").serial == "SN-42"
        with pytest.raises(NotFoundError, match="no host 'node9'"):
            hosts.get_host(s, "node9")
        host = hosts.get_host(s, "node1")
        hosts.update_host(s, host, macs=["52:54:00:00:00:01", "52:54:00:00:00:02"])
    with any_database.scope() as s:
        assert hosts.get_host(s, "52:54:00:00:00:02").id == host_id
        hosts.remove_host(s, hosts.get_host(s, host_id))
    with any_database.scope() as s:
        assert hosts.host_by_mac(s, "52:54:00:00:00:02") is None


def test_duplicate_mac_is_a_conflict(any_database: Database) -> None:
    with any_database.scope() as s:
        hosts.add_host(s, macs=["52:54:00:00:00:01"])
    with pytest.raises(ConflictError, match="already belongs to host"), any_database.scope() as s:
        hosts.add_host(s, macs=["52-54-00-00-00-01"])


def test_a_host_needs_an_identity(any_database: Database) -> None:
    with pytest.raises(InvalidInputError, match="at least one MAC"), any_database.scope() as s:
        hosts.add_host(s, hostname="nobody")


def test_profile_inheritance_folds_parents_in(any_database: Database) -> None:
    with any_database.scope() as s:
        pools.create_pool(s, "rack1")
        profiles.create_profile(
            s,
            "base",
            release="r1",
            template="fresh-dhcp",
            variables={"timezone": "Etc/UTC", "keymap": "us"},
            kernel_args="quiet",
            disk_rule={"disk": "sda"},
            pool="rack1",
        )
        child = profiles.create_profile(
            s, "child", parent="base", variables={"keymap": "fr"}, kernel_args="nomodeset"
        )
        effective = profiles.resolve_profile(child)
    assert effective.chain == ("child", "base")
    assert effective.release == "r1" and effective.template == "fresh-dhcp"
    assert effective.variables == {"timezone": "Etc/UTC", "keymap": "fr"}
    assert effective.kernel_args == "quiet nomodeset"
    assert effective.disk_rule == {"disk": "sda"}
    assert effective.pool_id is not None


def test_profile_cycles_and_in_use_deletes_are_refused(any_database: Database) -> None:
    with any_database.scope() as s:
        a = profiles.create_profile(s, "a")
        profiles.create_profile(s, "b", parent="a")
        with pytest.raises(ConflictError, match="cannot inherit from itself"):
            profiles.update_profile(s, a, parent="b")
    with any_database.scope() as s:
        with pytest.raises(ConflictError, match="is the parent of b"):
            profiles.delete_profile(s, profiles.get_profile(s, "a"))
        hosts.add_host(s, macs=["52:54:00:00:00:09"], profile="b")
        with pytest.raises(ConflictError, match="assigned to hosts"):
            profiles.delete_profile(s, profiles.get_profile(s, "b"))


def test_profile_names_and_fields_are_checked(any_database: Database) -> None:
    with any_database.scope() as s:
        with pytest.raises(InvalidInputError, match="profile name"):
            profiles.create_profile(s, "../etc")
        with pytest.raises(InvalidInputError, match="unknown profile field"):
            profiles.create_profile(s, "x", colour="blue")
        with pytest.raises(InvalidInputError, match="variables must be an object"):
            profiles.create_profile(s, "y", variables=["a"])


def test_selectors_or_within_a_profile_oldest_wins(any_database: Database) -> None:
    with any_database.scope() as s:
        rack = profiles.create_profile(s, "rack")
        lab = profiles.create_profile(s, "lab")
        selectors.add_selector(s, rack, "mac", "52-54-00-AA-*")
        selectors.add_selector(s, rack, "serial", "RACK-??")
        selectors.add_selector(s, lab, "mac", "52:54:00:*")
        with pytest.raises(InvalidInputError, match="not one of mac, uuid, serial"):
            selectors.add_selector(s, lab, "hostname", "x*")
    with any_database.scope() as s:
        assert selectors.match_profile(s, ["52:54:00:aa:00:01"]).name == "rack"
        assert selectors.match_profile(s, ["00:11:22:33:44:55"], serial="rack-07").name == "rack"
        assert selectors.match_profile(s, ["52:54:00:bb:00:01"]).name == "lab"
        assert selectors.match_profile(s, ["00:11:22:33:44:55"], serial="RACK-100") is None


def test_lifecycle_moves_and_refusals(any_database: Database) -> None:
    with any_database.scope() as s:
        profiles.create_profile(s, "p")
        host = hosts.add_host(s, macs=["52:54:00:00:00:01"])
        with pytest.raises(ConflictError, match="has no profile"):
            hosts.reinstall_host(s, host)
        hosts.update_host(s, host, profile="p")
        assert host.state == State.READY
        hosts.set_state(s, host, State.INSTALLING)
        hosts.set_state(s, host, State.INSTALLED)
        with pytest.raises(TransitionError, match="is installed and cannot become installing"):
            hosts.set_state(s, host, State.INSTALLING)
        hosts.reinstall_host(s, host)
        assert host.state == State.READY
        kinds = [e.message for e in list_events(s, host=host)]
    assert kinds[0] == "added as discovered"
    assert "reinstall requested" in kinds


def test_api_tokens_are_stored_hashed(any_database: Database) -> None:
    with any_database.scope() as s:
        token = tokens.create_api_token(s, "ops")
        with pytest.raises(ConflictError):
            tokens.create_api_token(s, "ops")
    with any_database.scope() as s:
        (record,) = tokens.list_api_tokens(s)
        assert token not in (record.hash, record.name)
        assert tokens.verify_api_token(s, token).name == "ops"
        assert tokens.verify_api_token(s, token + "x") is None
        tokens.revoke_api_token(s, "ops")
    with any_database.scope() as s:
        assert tokens.verify_api_token(s, token) is None


def test_install_token_rotates(any_database: Database) -> None:
    with any_database.scope() as s:
        host = hosts.add_host(s, macs=["52:54:00:00:00:01"])
        first = tokens.issue_install_token(host)
        s.flush()
        assert tokens.host_for_install_token(s, first).id == host.id
        second = tokens.issue_install_token(host)
        s.flush()
        assert tokens.host_for_install_token(s, first) is None
        assert tokens.host_for_install_token(s, second).id == host.id


def test_events_come_newest_last_and_limited(any_database: Database) -> None:
    with any_database.scope() as s:
        host = hosts.add_host(s, macs=["52:54:00:00:00:01"])
        for i in range(5):
            record_event(s, host, "progress", f"m{i}", step="s", percent=i * 20)
    with any_database.scope() as s:
        events = list_events(s, host=hosts.get_host(s, 1), kind="progress", limit=3)
    assert [e.message for e in events] == ["m2", "m3", "m4"]


def test_pools(any_database: Database) -> None:
    with any_database.scope() as s:
        pool = pools.create_pool(s, "rack1", force=True)
        assert pool.secret and pool.force
        with pytest.raises(ConflictError):
            pools.create_pool(s, "rack1")
        hosts.add_host(s, macs=["52:54:00:00:00:01"], pool="rack1")
    with any_database.scope() as s:
        pool = pools.get_pool(s, "rack1")
        assert [h.mac_list for h in pools.pool_members(s, pool)] == [["52:54:00:00:00:01"]]
        with pytest.raises(ConflictError, match="still has hosts"):
            pools.delete_pool(s, pool)
