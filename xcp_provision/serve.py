"""``xcp-provision serve`` as the program runs it: the server's command, seeding ``--demo`` with
the demo release the image builders write.
"""

from __future__ import annotations

from pathlib import Path

from images.demo import build_demo_release
from pxe.cli.serve import serve_command


def _write_demo_release(out_dir: Path) -> None:
    build_demo_release(out_dir)


serve = serve_command(_write_demo_release)
