"""Suite-wide rules.

Under CI (``CI=true``) a skipped test, a module skipped as a whole (``importorskip`` included) and
an ``xfail`` each count as a failure: a test that did not run, or ran without counting, proves
nothing, and CI installs every tool the suite needs.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _refuse(report: pytest.CollectReport | pytest.TestReport, what: str) -> None:
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"{what} under CI=true, which must run everything: {reason}"


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a cancelled CI job, ``kill``) ends the run as Ctrl-C does, so the fixtures'
    teardown still stops the servers and frees the loop devices, mounts and namespaces they made;
    by default SIGTERM ends Python at once and leaves them all behind."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (image builds and VMs, minutes each) first, the rest in their order after.

    ``make test`` hands whole files to two workers in this order: the long tests start at once and
    the short ones fill in beside them, instead of a VM test starting last and running alone.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A skip, an xfail or an unexpected pass of an xfail test fails the run under CI."""
    outcome = yield
    report = outcome.get_result()
    if not IN_CI:
        return
    if hasattr(report, "wasxfail"):
        _refuse(report, "marked xfail")
        del report.wasxfail  # else the session does not count it as failed
    elif report.skipped:
        _refuse(report, "skipped")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped as a whole (``pytest.skip(allow_module_level=True)``, a failed
    ``importorskip``) is a collection report, never a test report: refuse it here too."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        _refuse(report, "skipped at collection")
