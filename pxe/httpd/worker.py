"""One HTTP worker process of ``serve``: the Flask app under granian on an inherited socket.

Started by :class:`pxe.httpd.workers.HttpWorkers` as ``python -m pxe.httpd.worker --fd N``, with the
settings of its ``serve`` in ``XCP_PROVISION_*`` variables. It serves until SIGTERM or SIGINT,
lets the requests in flight finish, closes the database and exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
from pathlib import Path
from types import FrameType

from pxe.config import load_settings
from pxe.db.session import close_databases
from pxe.httpd.server import HttpServer
from pxe.logging_json import configure_logging
from pxe.tftp.counters import SharedTftpCounters
from pxe.web.app import create_app
from pxe.web.metrics import attach_tftp

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """Get SIGTERM when ``serve`` dies, even by SIGKILL: a worker must not outlive it, holding
    the port and answering from stale settings."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # serve died before the line above
        raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--tftp-counters", type=Path, help="the TFTP service's counters file")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_format)
    _die_with_parent()
    sock = socket.socket(fileno=args.fd)
    app = create_app(settings)
    if args.tftp_counters:
        attach_tftp(app, SharedTftpCounters(args.tftp_counters, writable=False))
    server = HttpServer(app, sock, settings.http_threads)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    try:
        server.wait()
    finally:
        close_databases()


if __name__ == "__main__":
    main()
