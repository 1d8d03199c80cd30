"""The deployment files are linted by the real tools and install through the tested script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bin(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(found).exists(), f"{name} is not installed (make test installs it)"
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_bin("hadolint"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_and_make_run_share_the_install_script():
    docker_runs = re.findall(r"^RUN .*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert any("./scripts/setup.sh runtime" in line for line in docker_runs)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^setup-runtime:\n\t\./scripts/setup\.sh runtime$", makefile, re.M)
    assert re.search(r"^run: setup-runtime$", makefile, re.M)


def test_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "deploy" / "xcp-provision.service").read_text()
    exe = Path(sys.executable).parent / "xcp-provision"
    local = tmp_path / "xcp-provision.service"
    local.write_text(unit.replace("/opt/xcp-provision/.venv/bin/xcp-provision", str(exe)))
    result = subprocess.run([_bin("systemd-analyze"), "verify", str(local)],
                            capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if "xcp-provision.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
