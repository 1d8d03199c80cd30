"""Stopping a QEMU started under ``timeout``, without leaving it behind."""

from __future__ import annotations

import subprocess


def stop_vm(proc: subprocess.Popen) -> None:
    """SIGTERM to ``timeout``, which passes it on to QEMU; SIGKILL only if that did not work.

    Killing ``timeout`` itself with SIGKILL would orphan QEMU, which then runs until the
    machine reboots.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
