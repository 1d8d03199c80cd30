"""What boot decisions read of a host: one query by MAC, UUID or serial, on both backends."""

from __future__ import annotations

import pytest

from pxe.db.models import Profile
from pxe.db.session import Database
from pxe.store import hosts, pools, profiles
from pxe.store.boot_facts import boot_facts, effective_profile
from pxe.store.errors import ConflictError
from pxe.store.lifecycle import State

UUID = "4c4c4544-0042-3510-8052-b4c04f564433"


def test_a_host_is_found_by_each_identity_with_all_its_macs(any_database: Database) -> None:
    with any_database.scope() as s:
        profiles.create_profile(s, "p", release="demo")
        host = hosts.add_host(s, macs=["52:54:00:00:00:01", "52:54:00:00:00:02"], uuid=UUID,
                              serial="SN1", hostname="node1", profile="p")  # fmt: skip
        hosts.add_host(s, macs=["52:54:00:00:00:03"], serial="SN2")
        host_id, profile_id, updated = host.id, host.profile_id, host.updated_at
    engine = any_database.engine
    by_mac = boot_facts(engine, mac="52:54:00:00:00:02")
    assert by_mac is not None
    assert (by_mac.id, by_mac.hostname, by_mac.state, by_mac.profile_id) == (
        host_id, "node1", State.READY, profile_id)  # fmt: skip
    assert (by_mac.smbios_uuid, by_mac.serial, by_mac.updated_at) == (UUID, "SN1", updated)
    assert sorted(by_mac.mac_list) == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    # A MAC first, then the UUID, then the serial: a new NIC of a known machine is found.
    assert boot_facts(engine, mac="52:54:00:00:00:99", uuid=UUID).id == host_id
    assert boot_facts(engine, mac="52:54:00:00:00:99", serial="SN1").id == host_id
    assert boot_facts(engine, mac="52:54:00:00:00:03", uuid=UUID).serial == "SN2"
    assert boot_facts(engine, mac="52:54:00:00:00:99") is None
    assert boot_facts(engine) is None


def test_effective_profile_folds_the_ancestry_like_the_orm(any_database: Database) -> None:
    with any_database.scope() as s:
        pools.create_pool(s, "rack1")
        profiles.create_profile(s, "base", release="r1", template="fresh-dhcp",
                                variables={"a": 1, "b": 1}, kernel_args="quiet", pool="rack1")
        profiles.create_profile(s, "mid", parent="base", variables={"b": 2})
        leaf = profiles.create_profile(s, "leaf", parent="mid", release="r2",
                                       kernel_args="debug", disk_rule={"disk": "nvme0n1"})
        s.flush()  # fmt: skip
        leaf_id, expected = leaf.id, profiles.resolve_profile(leaf)
    assert effective_profile(any_database.engine, leaf_id) == expected
    assert expected.variables == {"a": 1, "b": 2} and expected.kernel_args == "quiet debug"


def test_effective_profile_refuses_a_cycle(any_database: Database) -> None:
    with any_database.scope() as s:
        a = profiles.create_profile(s, "a")
        b = profiles.create_profile(s, "b", parent="a")
        s.flush()
        a_id = a.id
        s.get(Profile, a_id).parent_id = b.id  # only a broken database holds this
    with pytest.raises(ConflictError, match="itself"):
        effective_profile(any_database.engine, a_id)
