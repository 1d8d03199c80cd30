"""One HTTP worker process of ``serve``: the Flask app under waitress on an inherited socket.

Started by :class:`pxe.httpd.workers.HttpWorkers` as ``python -m pxe.httpd.worker --fd N``, with the
settings of its ``serve`` in ``XCP_PROVISION_*`` variables. It serves until SIGTERM or SIGINT,
then closes its connections and the database and exits 0.
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
from pxe.httpd.server import hand_over_interpreter_quickly, make_socket_server
from pxe.logging_json import configure_logging
from pxe.tftp.counters import SharedTftpCounters
from pxe.web.app import create_app
from pxe.web.metrics import attach_tftp

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT: waitress's loop lets SystemExit through."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(0)


def _die_with_parent() -> None:
    """Get SIGTERM when ``serve`` dies, even by SIGKILL: a worker must not outlive it, holding
    the port and answering from stale settings."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # serve died before the line above
        raise _Stop(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--tftp-counters", type=Path, help="the TFTP service's counters file")
    args = parser.parse_args(argv)
    hand_over_interpreter_quickly()
    settings = load_settings()
    configure_logging(settings.log_format)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _die_with_parent()
    sock = socket.socket(fileno=args.fd)
    app = create_app(settings)
    if args.tftp_counters:
        attach_tftp(app, SharedTftpCounters(args.tftp_counters, writable=False))
    server = make_socket_server(app, sock, settings.http_threads)
    try:
        server.run()  # returns once a signal stopped the loop and in-flight requests finished
    finally:
        server.close()
        close_databases()


if __name__ == "__main__":
    main()
