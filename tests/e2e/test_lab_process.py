"""A process the lab launched and is still waiting for is stopped when the wait fails or is
interrupted: nothing else knows of it yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.process import launch, stopped_unless_ready


class NotReadyError(Exception):
    pass


@pytest.mark.parametrize("stop", [KeyboardInterrupt, NotReadyError])
def test_a_wait_that_ends_badly_stops_what_it_waited_for(tmp_path: Path, stop: type) -> None:
    first = launch("first", ["sleep", "60"], tmp_path / "first.log")
    second = launch("second", ["sleep", "60"], tmp_path / "second.log")
    try:
        with pytest.raises(stop), stopped_unless_ready(first, second):
            raise stop()
        assert not first.running() and not second.running()
    finally:
        first.stop()
        second.stop()


def test_a_ready_process_is_left_running(tmp_path: Path) -> None:
    process = launch("ready", ["sleep", "60"], tmp_path / "ready.log")
    try:
        with stopped_unless_ready(process):
            pass
        assert process.running()
    finally:
        process.stop()
    assert not process.running()
