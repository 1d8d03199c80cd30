"""The open-loop measure of the HTTP benches (``bench/open_loop.lua`` under wrk): requests go out
at the rate asked, and a server's stall shows in the latencies of every request due during it,
not only in the few that were in flight (the coordinated omission a closed loop makes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.http_bench import open_loop

RATE = 200
SECONDS = 4
# Few, so that the requests in flight when the server stalls are under 1% of all: only the
# requests due during the stall can carry the p99 there.
CONNECTIONS = 2


@contextmanager
def server(stall_seconds: float) -> Iterator[tuple[str, list[float]]]:
    """A local HTTP server answering one request at a time; the first request after 1 s waits
    ``stall_seconds`` first, and every other waits behind it. Yields its URL and the times the
    requests arrived."""
    lock = threading.Lock()
    arrivals: list[float] = []
    started = time.monotonic()
    stalled = [stall_seconds == 0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                arrivals.append(time.monotonic())
                if not stalled[0] and time.monotonic() - started > 1.0:
                    stalled[0] = True
                    time.sleep(stall_seconds)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops SYNs: a 1 s retransmit, not our stall

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", arrivals
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("stall", [0.0, 1.5])
def test_a_stall_shows_in_the_latencies_of_every_request_due_during_it(tmp_path, stall):
    with server(stall) as (base, arrivals):
        load = open_loop(base, ["/a", "/b"], RATE, CONNECTIONS, tmp_path, seconds=SECONDS)

    assert load.failed == 0
    # The requests went out at the rate asked, the stalled second included.
    assert RATE * SECONDS * 0.9 <= load.due <= RATE * SECONDS * 1.05
    assert len(arrivals) >= RATE * SECONDS * 0.85
    if stall:
        # 300 of 800 requests were due while the server stood still: the p99 is most of the
        # stall. Counted from when each went out, only the 2 in flight would have been slow.
        assert load.p99_ms >= 0.7 * stall * 1000
        assert load.p50_ms < 500
    else:
        # Bounds loose enough for a busy machine, far under the stall.
        assert load.p99_ms < 500
