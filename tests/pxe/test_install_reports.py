"""An installer's reports as prepared statements: the state moves, events and failure log the
ORM path made, once per install whoever else reports at the same moment, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pxe.db.session import Database
from pxe.store import hosts, profiles, tokens
from pxe.store.bmc import SEEN_FACT, BmcSeen
from pxe.store.errors import ConflictError, NotFoundError
from pxe.store.events import list_events
from pxe.store.install_reports import (
    Reporter,
    mark_failed,
    mark_installed,
    record_progress,
    token_holder,
)
from pxe.store.lifecycle import State, TransitionError


def _host(database: Database, state: State = State.INSTALLING, *, spent: bool = False) -> str:
    with database.scope() as s:
        profiles.create_profile(s, "p", release="demo", template="fresh-dhcp")
        host = hosts.add_host(s, macs=["52:54:00:ee:00:01"], hostname="node-e", profile="p")
        token = tokens.issue_install_token(host)
        host.state = state.value
        if spent:
            host.token_spent = True
        return token


def _history(database: Database) -> tuple[list[tuple[str, str, str, int | None]], str]:
    """The host's events (kind, message, step, percent) and its state."""
    with database.scope(write=False) as s:
        host = hosts.get_host(s, "node-e")
        events = [(e.kind, e.message, e.step, e.percent) for e in list_events(s, host=host)]
        return events, host.state


def _holder(database: Database, token: str) -> Reporter:
    holder = token_holder(database, token)
    assert holder is not None
    return holder


def test_the_token_holder(any_database: Database) -> None:
    token = _host(any_database, spent=True)
    holder = _holder(any_database, token)
    assert (holder.hostname, holder.token_spent, holder.who) == ("node-e", True, "host node-e")
    assert token_holder(any_database, "xpi_unknown") is None
    assert token_holder(any_database, "") is None


def test_progress_starts_the_install_once_then_records_events(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database, State.READY))
    assert record_progress(any_database, host, "partition", 10, "sda") is True
    assert record_progress(any_database, host, "laydown", 50, "") is False
    events, state = _history(any_database)
    assert state == State.INSTALLING.value
    assert events[-3:] == [("state", "installer started: partition", "", None),
                           ("progress", "sda", "partition", 10),
                           ("progress", "", "laydown", 50)]  # fmt: skip


def test_progress_of_a_host_not_installing_is_a_conflict(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database, State.INSTALLED))
    with pytest.raises(ConflictError, match="node-e is installed, not installing"):
        record_progress(any_database, host, "x", None, "")
    assert [e for e in _history(any_database)[0] if e[0] == "progress"] == []


def test_build_done_installs_the_host_once(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database))
    mark_installed(any_database, host)
    events, state = _history(any_database)
    assert (events[-1], state) == (("done", "build done", "", None), State.INSTALLED.value)
    with pytest.raises(ConflictError, match="node-e already reported build-done"):
        mark_installed(any_database, host)


def test_a_failure_report_keeps_the_reason_and_log_once(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database))
    mark_failed(any_database, host, "no disk", "sda: not found")
    events, state = _history(any_database)
    assert (events[-1], state) == (("failed", "no disk", "", None), State.FAILED.value)
    with any_database.scope(write=False) as s:
        assert hosts.get_host(s, host.id).failure_log == "sda: not found"
    with pytest.raises(TransitionError):
        mark_failed(any_database, host, "again", "")
    assert _history(any_database)[0][-1][1] == "no disk"


def test_a_host_that_cannot_be_installed_is_a_conflict(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database, State.DISCOVERED))
    with pytest.raises(TransitionError):
        mark_installed(any_database, host)
    assert _history(any_database)[1] == State.DISCOVERED.value


def test_a_host_removed_since_its_token_was_read_is_not_found(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database))
    with any_database.scope() as s:
        hosts.remove_host(s, hosts.get_host(s, host.id))
    with pytest.raises(NotFoundError):
        mark_installed(any_database, host)


def test_reports_at_the_same_moment_move_the_host_once(any_database: Database) -> None:
    host = _holder(any_database, _host(any_database, State.READY))

    def done(_: int) -> str:
        try:
            mark_installed(any_database, host)
            return "installed"
        except ConflictError:
            return "conflict"

    with ThreadPoolExecutor(16) as pool:
        started = list(pool.map(lambda i: record_progress(any_database, host, f"s{i}", i, ""),
                                range(16)))  # fmt: skip
        outcomes = list(pool.map(done, range(16)))
    assert sorted(started) == [False] * 15 + [True]
    assert sorted(outcomes) == ["conflict"] * 15 + ["installed"]
    events, state = _history(any_database)
    kinds = [kind for kind, message, *_ in events if kind != "state" or "installer" in message]
    assert (kinds.count("state"), kinds.count("progress"), kinds.count("done")) == (1, 16, 1)
    assert state == State.INSTALLED.value


def test_progress_keeps_the_bmc_its_installer_saw_beside_the_other_facts(
    any_database: Database,
) -> None:
    token = _host(any_database, State.READY)
    with any_database.scope() as s:
        host = hosts.get_host(s, "node-e")
        host.facts = {"cpu_count": 4}
        before = host.updated_at
    seen = BmcSeen("10.20.30.40", "static", "52:54:00:ab:cd:ef", 1)
    record_progress(any_database, _holder(any_database, token), "bmc", None, "", seq=1,
                    bmc_seen=seen)  # fmt: skip
    with any_database.scope(write=False) as s:
        host = hosts.get_host(s, "node-e")
        assert host.facts == {"cpu_count": 4, SEEN_FACT: seen.as_fact()}
        assert host.report_seq == 1 and host.state == State.INSTALLING
        assert host.updated_at > before


@pytest.mark.parametrize("seq", [None, 4])
def test_a_build_done_is_one_write_of_state_key_and_number(any_database: Database, seq) -> None:
    """The last report of a cycle writes the host's state, its registration key and the report's
    number in one UPDATE; a build-done without a number keeps the last one recorded."""
    host = _holder(any_database, _host(any_database))
    record_progress(any_database, host, "laydown", 50, "", seq=3)
    with any_database.scope(write=False) as s:
        before = hosts.get_host(s, "node-e").updated_at
    mark_installed(any_database, host, seq=seq, registration_key_hash="k" * 64)
    with any_database.scope(write=False) as s:
        done = hosts.get_host(s, "node-e")
        assert (done.state, done.state_reason) == (State.INSTALLED.value, "build done")
        assert done.registration_key_hash == "k" * 64
        assert done.report_seq == (3 if seq is None else seq)
        assert done.updated_at > before


@pytest.mark.parametrize("seq", [None, 4])
def test_a_failure_is_one_write_of_state_log_and_number(any_database: Database, seq) -> None:
    host = _holder(any_database, _host(any_database))
    record_progress(any_database, host, "laydown", 50, "", seq=3)
    mark_failed(any_database, host, "disk gone", "sda: I/O error", seq=seq)
    with any_database.scope(write=False) as s:
        failed = hosts.get_host(s, "node-e")
        assert (failed.state, failed.state_reason) == (State.FAILED.value, "disk gone")
        assert failed.failure_log == "sda: I/O error"
        assert failed.report_seq == (3 if seq is None else seq)
