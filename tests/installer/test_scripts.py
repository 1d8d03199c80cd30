"""Stage scripts fetched over HTTP: arguments, XS_STAGE, and failures that are only logged."""

from __future__ import annotations

from pathlib import Path

from support.release_server import ReleaseServer

from answerfiles.model import Script, ScriptStage, SourceType
from installer import scripts


def _script(url: str, stage: ScriptStage, name: str) -> Script:
    return Script(stage, SourceType.URL, f"{url}/{name}")


def test_each_stage_gets_its_arguments_and_xs_stage(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    (tmp_path / "rec").write_text(f'#!/bin/sh\necho "$XS_STAGE|$#|$*" >> {calls}\nexit 4\n')
    (tmp_path / "plain").write_text("echo no shebang\n")
    with ReleaseServer(tmp_path) as srv:
        chosen = (
            _script(srv.url, ScriptStage.INSTALLATION_START, "rec"),
            _script(srv.url, ScriptStage.FILESYSTEM_POPULATED, "rec"),
            _script(srv.url, ScriptStage.FILESYSTEM_POPULATED, "plain"),
            _script(srv.url, ScriptStage.FILESYSTEM_POPULATED, "missing"),
            _script(srv.url, ScriptStage.INSTALLATION_COMPLETE, "rec"),
        )
        start = scripts.run_stage(chosen, ScriptStage.INSTALLATION_START)
        populated = scripts.run_stage(chosen, ScriptStage.FILESYSTEM_POPULATED, "/mnt/target")
        complete = scripts.run_stage(chosen, ScriptStage.INSTALLATION_COMPLETE, "1")
    assert calls.read_text().splitlines() == [
        "installation-start|0|",
        "filesystem-populated|1|/mnt/target",
        "installation-complete|1|1",
    ]
    assert [r.returncode for r in (*start, *populated, *complete)] == [4, 4, None, None, 4]
    assert "'#!'" in populated[1].output
    assert "HTTP 404" in populated[2].output


def test_nfs_scripts_are_reported_not_run() -> None:
    ran = scripts.run_stage(
        (Script(ScriptStage.INSTALLATION_START, SourceType.NFS, "srv:/x"),),
        ScriptStage.INSTALLATION_START,
    )
    assert ran[0].returncode is None and "not supported" in ran[0].output
