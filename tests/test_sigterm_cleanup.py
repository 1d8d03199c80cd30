"""A run stopped by SIGTERM still tears its fixtures down, as one stopped by Ctrl-C does: a
cancelled CI job must not leave servers, loop devices or namespaces behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASE = """
import pathlib
import time

import pytest

MARKS = pathlib.Path({marks!r})


@pytest.fixture
def resource():
    (MARKS / "up-{name}").touch()
    yield
    (MARKS / "down-{name}").touch()


def test_long(resource):
    time.sleep(120)
"""


def _stop_while_running(tmp_path: Path, options: list[str], running: int) -> list[str]:
    """Run two files of one long test each, SIGTERM the run's process group (as a CI runner
    cancelling a job does) once ``running`` tests have set their fixture up, and return the
    marks the fixtures left."""
    marks = tmp_path / "marks"
    marks.mkdir()
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(CASE.format(marks=str(marks), name=name))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
            "--rootdir", str(tmp_path), "-c", os.devnull, *options, str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO, start_new_session=True, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list(marks.glob("up-*"))) < running:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the tests never started"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0, output
    return sorted(path.name for path in marks.iterdir())


def test_one_process_tears_down_on_sigterm(tmp_path: Path) -> None:
    assert _stop_while_running(tmp_path, [], running=1) == ["down-a", "up-a"]


@pytest.mark.timeout(180)
def test_each_worker_tears_down_on_sigterm(tmp_path: Path) -> None:
    marks = _stop_while_running(tmp_path, ["-n", "2", "--dist", "loadfile"], running=2)
    assert marks == ["down-a", "down-b", "up-a", "up-b"]
