"""Build-done as a compare-and-set write: once per install, whoever else reports at the same
moment, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pxe.db.session import Database
from pxe.lifecycle import State, TransitionError
from pxe.store import hosts, profiles, tokens
from pxe.store.build_done import Installed, mark_installed
from pxe.store.errors import ConflictError
from pxe.store.events import list_events


def _host(database: Database, state: State = State.INSTALLING, *, spent: bool = False) -> str:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        host = hosts.add_host(s, macs=["52:54:00:ee:00:01"], hostname="node-e", profile="p")
        token = tokens.issue_install_token(host)
        host.state = state.value
        if spent:
            tokens.spend_install_token(host)
        return token


def _done_events(database: Database) -> list[str]:
    with database.scope(write=False) as s:
        host = hosts.get_host(s, "node-e")
        return [e.message for e in list_events(s, host=host, kind="done")], host.state


def test_build_done_installs_the_host_once(any_database: Database) -> None:
    token = _host(any_database)
    installed = mark_installed(any_database, token)
    assert installed == Installed(installed.host_id, "node-e")
    assert _done_events(any_database) == (["build done"], State.INSTALLED.value)
    with pytest.raises(ConflictError, match="node-e already reported build-done"):
        mark_installed(any_database, token)
    assert mark_installed(any_database, "xpi_unknown") is None


def test_a_spent_token_still_reports_build_done(any_database: Database) -> None:
    """Registration may spend the token before a slow installer reports."""
    token = _host(any_database, spent=True)
    assert mark_installed(any_database, token) is not None


def test_a_host_that_cannot_be_installed_is_a_conflict(any_database: Database) -> None:
    token = _host(any_database, State.DISCOVERED)
    with pytest.raises(TransitionError):
        mark_installed(any_database, token)
    assert _done_events(any_database) == ([], State.DISCOVERED.value)


def test_reports_at_the_same_moment_install_once(any_database: Database) -> None:
    token = _host(any_database, State.READY)

    def report(_: int) -> str:
        try:
            mark_installed(any_database, token)
            return "installed"
        except ConflictError:
            return "conflict"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(report, range(16)))
    assert sorted(outcomes) == ["conflict"] * 15 + ["installed"]
    assert _done_events(any_database) == (["build done"], State.INSTALLED.value)
