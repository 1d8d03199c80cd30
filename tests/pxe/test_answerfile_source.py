"""What an answer file is made from: the host, its profile's ancestry and their pools, read in
one query on every request (so a change made by another process is served at once), and the
same values as the ORM path the dashboard takes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from support.serve import EXE

from answerfiles.parse import parse_answerfile
from common.runner import run
from pxe.boot.answerfile import answerfile_for, host_answerfile
from pxe.config import Settings
from pxe.db.models import Profile
from pxe.db.session import Database
from pxe.store import hosts, pools, profiles, tokens
from pxe.store.errors import ConflictError, NotFoundError
from pxe.store.hosts import AnswerFileHost, answerfile_host
from pxe.web.app import create_app

MACS = ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]


def _inventory(database: Database) -> dict[str, int]:
    """root (pool p1) <- mid <- leaf; host a on leaf with two MACs, host b on leaf in pool p2,
    host c without a profile."""
    with database.scope() as s:
        pools.create_pool(s, "p1")
        pools.create_pool(s, "p2")
        profiles.create_profile(s, "root", release="demo", template="fresh-dhcp", pool="p1",
                                variables={"timezone": "Europe/Paris", "keymap": "fr"},
                                kernel_args="a=1")  # fmt: skip
        profiles.create_profile(s, "mid", parent="root", variables={"keymap": "de"},
                                kernel_args="b=2")  # fmt: skip
        profiles.create_profile(s, "leaf", parent="mid", disk_rule={"disk": "sdb"})
        a = hosts.add_host(s, macs=MACS, hostname="node-a", profile="leaf")
        b = hosts.add_host(s, macs=["52:54:00:bb:00:01"], profile="leaf", pool="p2")
        c = hosts.add_host(s, macs=["52:54:00:cc:00:01"])
        return {"a": a.id, "b": b.id, "c": c.id}


def test_one_query_gives_what_the_orm_host_gives(any_database: Database) -> None:
    ids = _inventory(any_database)
    engine = any_database.engine
    with any_database.scope(write=False) as s:
        for host_id in ids.values():
            assert answerfile_host(engine, host_id) == AnswerFileHost.of(hosts.get_host(s, host_id))
        a = answerfile_host(engine, ids["a"])
        assert (a.hostname, a.mac, a.pool_name) == ("node-a", MACS[0], None)
        assert a.profile is not None
        assert a.profile.pool_name == "p1"
        effective = a.profile.profile
        assert effective.chain == ("leaf", "mid", "root")
        assert effective.variables == {"timezone": "Europe/Paris", "keymap": "de"}
        assert (effective.kernel_args, effective.disk_rule) == ("a=1 b=2", {"disk": "sdb"})
        assert effective == profiles.resolve_profile(profiles.get_profile(s, "leaf"))
        assert answerfile_host(engine, ids["b"]).pool_name == "p2"
        assert answerfile_host(engine, ids["c"]).profile is None
        assert answerfile_host(engine, MACS[1].upper()) == a
        assert answerfile_host(engine, "NODE-A") == a
        with pytest.raises(NotFoundError):
            answerfile_host(engine, 999)
        with pytest.raises(NotFoundError):
            answerfile_host(engine, "52:54:00:ff:ff:ff")


def test_a_profile_inheriting_from_itself_is_a_conflict(any_database: Database) -> None:
    ids = _inventory(any_database)
    with any_database.scope() as s:  # as if edited by hand: the store refuses such a parent
        root, leaf = profiles.get_profile(s, "root"), profiles.get_profile(s, "leaf")
        s.execute(update(Profile).where(Profile.id == root.id).values(parent_id=leaf.id))
    with pytest.raises(ConflictError, match="'leaf' inherits"):
        answerfile_host(any_database.engine, ids["a"])


def test_both_paths_render_the_same_answer_file(
    settings: Settings, database: Database, demo_release: Path
) -> None:
    ids = _inventory(database)
    with database.scope(write=False) as s:
        for name in ("a", "b"):
            orm = host_answerfile(settings, hosts.get_host(s, ids[name]), "xpi_t", "http://x")
            lean = answerfile_for(settings, answerfile_host(database.engine, ids[name]), "xpi_t",
                                  "http://x")  # fmt: skip
            assert orm == lean


def _token(database: Database, host_id: int) -> str:
    with database.scope() as s:
        return tokens.issue_install_token(hosts.get_host(s, host_id))


def _fetch(client, database: Database, host_id: int):
    response = client.get(f"/answerfile/{host_id}?token={_token(database, host_id)}")
    assert response.status_code == 200, response.text
    return parse_answerfile(response.text).answers


def test_a_profile_changed_by_another_process_is_served_next(
    settings: Settings, database: Database, demo_release: Path
) -> None:
    ids = _inventory(database)
    # The app has its own engine, as a server process does; the CLI below is another process.
    client = create_app(settings, database=Database(settings.database)).test_client()
    before = _fetch(client, database, ids["a"])
    assert (before.timezone, before.provisioning.pool) == ("Europe/Paris", "p1")

    data = ["--data-dir", str(settings.data_dir)]
    run([EXE, "profiles", "edit", "root", "--var", "timezone=Asia/Tokyo", "--pool", "p2", *data])
    after = _fetch(client, database, ids["a"])
    assert (after.timezone, after.provisioning.pool) == ("Asia/Tokyo", "p2")

    run([EXE, "profiles", "edit", "leaf", "--template", "fresh-static", *data])
    response = client.get(f"/answerfile/{ids['a']}?token=" + _token(database, ids["a"]))
    assert response.status_code == 500  # fresh-static needs ipaddr: refused, not served
    assert "ipaddr" in response.json["error"]


def test_an_inline_template_file_removed_is_written_again(
    settings: Settings, database: Database, demo_release: Path
) -> None:
    text = (Path(__file__).parents[2] / "answerfiles/templates/fresh-dhcp.xml.j2").read_text()
    inline = text.replace('{% include "_provisioning.xml.j2" %}', "")
    with database.scope() as s:
        profiles.create_profile(s, "inline", release="demo", template=inline)
        host_id = hosts.add_host(s, macs=MACS[:1], hostname="node-i", profile="inline").id
    client = create_app(settings, database=database).test_client()
    assert _fetch(client, database, host_id).hostname == "node-i"
    (written,) = (settings.data_dir / "templates").glob("inline-*.xml.j2")
    written.unlink()
    assert _fetch(client, database, host_id).hostname == "node-i"
    assert written.is_file()
