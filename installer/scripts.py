"""Stage scripts from the answer file, run as XCP-ng runs them.

``installation-start`` gets no argument, ``filesystem-populated`` the mounted target root,
``installation-complete`` ``0`` on success or ``1`` on failure; ``XS_STAGE`` names the stage. A
script must start with ``#!``. Its exit code and output go to the install log and never change
the install's outcome: a site's hook is not allowed to turn a good install into a failed one.
"""

from __future__ import annotations

import logging
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from answerfiles.model import Script, ScriptStage, SourceType
from common import runner
from common.errors import CommandError
from installer import sources

log = logging.getLogger(__name__)

TIMEOUT_S = 1800


@dataclass(frozen=True)
class ScriptRun:
    location: str
    stage: ScriptStage
    returncode: int | None  # None: never started (fetch failed, no shebang)
    output: str


def run_stage(
    scripts: tuple[Script, ...], stage: ScriptStage, *args: str
) -> tuple[ScriptRun, ...]:
    """Run every script of ``stage`` in answer-file order; failures are logged, not raised."""
    return tuple(_run_one(s, stage, args) for s in scripts if s.stage == stage)


def _run_one(script: Script, stage: ScriptStage, args: tuple[str, ...]) -> ScriptRun:
    if script.type != SourceType.URL:
        return _skipped(script, stage, f"{script.type.value} scripts are not supported; use a URL")
    try:
        body = sources.read_location(script.location, limit=64 << 20)
    except sources.SourceError as exc:
        return _skipped(script, stage, str(exc))
    if not body.startswith(b"#!"):
        return _skipped(script, stage, "does not start with '#!', so it cannot be run")
    with tempfile.TemporaryDirectory(prefix="xcp-script-") as tmp:
        path = Path(tmp) / "script"
        path.write_bytes(body)
        path.chmod(stat.S_IRWXU)
        try:
            result = runner.run(
                [path, *args], check=False, env={"XS_STAGE": stage.value}, timeout=TIMEOUT_S
            )
        except (CommandError, OSError) as exc:
            return _skipped(script, stage, str(exc))
    output = (result.stdout + result.stderr).strip()
    log.info(
        "%s script %s exited with %d%s",
        stage.value, script.location, result.returncode, f": {output}" if output else "",
    )  # fmt: skip
    return ScriptRun(script.location, stage, result.returncode, output)


def _skipped(script: Script, stage: ScriptStage, reason: str) -> ScriptRun:
    log.warning("%s script %s not run: %s", stage.value, script.location, reason)
    return ScriptRun(script.location, stage, None, reason)
