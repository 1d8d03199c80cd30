"""Under CI=true nothing may skip: a skip of any kind fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "skip": "import pytest\n\ndef test_it():\n    pytest.skip('no tool')\n",
    "module-skip": "import pytest\n\npytest.skip('no tool', allow_module_level=True)\n\n"
    "def test_it():\n    pass\n",
    "importorskip": "import pytest\n\npytest.importorskip('no_such_module_here')\n\n"
    "def test_it():\n    pass\n",
    "xfail": "import pytest\n\n@pytest.mark.xfail(reason='later')\n"
    "def test_it():\n    assert False\n",
    "xpass": "import pytest\n\n@pytest.mark.xfail(reason='later')\ndef test_it():\n    pass\n",
}


def _run(tmp_path: Path, body: str, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_case.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_case.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_under_ci_it_fails_the_run(tmp_path: Path, case: str) -> None:
    result = _run(tmp_path, CASES[case], "true")
    assert result.returncode != 0, result.stdout
    assert "under CI=true, which must run everything" in result.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_outside_ci_it_does_not(tmp_path: Path, case: str) -> None:
    result = _run(tmp_path, CASES[case], "")
    # 5: pytest ran no test, as when the only module was skipped whole.
    assert result.returncode in (0, 5), result.stdout
    assert "under CI=true" not in result.stdout
