"""Progress: weighted percentages, JSON lines, HTTP posts with the token, harmless failures."""

from __future__ import annotations

import io
import json
from pathlib import Path

from support.release_server import ReleaseServer

from common import registration_key
from installer.progress import (
    BuildDone,
    Event,
    HttpReporter,
    JsonLinesReporter,
    Progress,
    Step,
)


class _Broken:
    def event(self, event: Event) -> None:
        raise OSError("pipe closed")

    def failed(self, reason: str, log_text: str) -> None:
        raise OSError("pipe closed")

    def done(self, built: BuildDone) -> None:
        raise OSError("pipe closed")


def test_weighted_percentages_and_reporter_failures_are_harmless() -> None:
    out = io.StringIO()
    progress = Progress([Step("a", 1), Step("big", 8), Step("z", 1)],
                        [_Broken(), JsonLinesReporter(out)])
    progress.start("a")
    progress.update("big", 0.5, "half")
    progress.start("z")
    progress.done()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("percent") for line in lines[:-1]] == [0, 50, 90, 100]
    assert lines[1] == {"step": "big", "percent": 50, "message": "half"}
    assert lines[-1] == {"done": True}


def test_a_download_reporting_every_chunk_sends_each_percentage_once() -> None:
    out = io.StringIO()
    progress = Progress([Step("laydown", 1)], [JsonLinesReporter(out)])
    for received in range(1, 2001):  # a chunk at a time, 2,000 of them, as the laydown reports
        progress.update("laydown", received / 2000, "writing dom0-rootfs.tar.zst")
    progress.update("laydown", 1.0, "writing xen.gz")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["percent"] for line in lines[:-1]] == list(range(101))
    assert {line["message"] for line in lines[:-1]} == {"writing dom0-rootfs.tar.zst"}
    assert lines[-1] == {"step": "laydown", "percent": 100, "message": "writing xen.gz"}


def test_http_reporter_posts_with_the_token(tmp_path: Path) -> None:
    with ReleaseServer(tmp_path) as srv:
        reporter = HttpReporter(srv.url + "/", "secret", min_interval=3600)
        progress = Progress([Step("a", 1), Step("b", 1)], [reporter])
        progress.start("a")
        progress.update("a", 0.5)
        progress.start("b")
        progress.failed("disk on fire", "x" * 300_000)
        posts = srv.posts
    assert [p.path for p in posts] == [
        "/api/v1/installs/events", "/api/v1/installs/events", "/api/v1/installs/failed"]
    assert all(p.authorization == "Bearer secret" for p in posts)
    assert posts[1].body == {"step": "b", "percent": 50, "message": "b", "seq": 2}
    assert [p.body["seq"] for p in posts] == [1, 2, 3]
    assert posts[2].body["reason"] == "disk on fire"
    assert len(posts[2].body["log"]) == 256 * 1024


def test_build_done_announces_the_registration_keys_hash(tmp_path: Path) -> None:
    digest = registration_key.digest("the key left on the disk")
    with ReleaseServer(tmp_path) as srv:
        progress = Progress([Step("a", 1)], [HttpReporter(srv.url, "secret", min_interval=0)])
        progress.start("a")
        progress.done(BuildDone(digest))
        posts = srv.posts
    assert [p.path for p in posts][-1] == "/api/v1/installs/done"
    assert posts[-1].body == {registration_key.DIGEST_FIELD: digest, "seq": len(posts)}
    assert "the key left on the disk" not in json.dumps([p.body for p in posts])


def test_unreachable_server_does_not_stop_progress(tmp_path: Path) -> None:
    with ReleaseServer(tmp_path) as srv:
        dead = srv.url
    out = io.StringIO()
    reporter = HttpReporter(dead, "t", patience=0.5, final_patience=1, backoff=0.1)
    progress = Progress([Step("a", 1)], [reporter, JsonLinesReporter(out)])
    progress.start("a")
    progress.done()
    assert json.loads(out.getvalue().splitlines()[-1]) == {"done": True}
