"""``bench/app_cost_bench.py`` still measures what it names: every kind of request answered 200
by the app (the bench stops otherwise) and a figure printed for each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "app_cost_bench.py"


def test_prints_a_cost_for_each_kind_of_request() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--hosts", "100", "--rounds", "2", "--requests", "4"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for kind in ("healthz", "boot script", "answer file", "build-done", "registration"):
        line = next((x for x in done.stdout.splitlines() if x.strip().startswith(kind)), "")
        assert re.search(r"\d+\.\d+ us \[[\d.]+-[\d.]+\] a request", line), done.stdout
