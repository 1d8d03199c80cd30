"""The CPU figures the benches print (``bench/cpu.py``): a server's tree counts the CPU of its
children, those still running and those it has reaped, and nothing of a process outside it."""

from __future__ import annotations

import subprocess
import sys

from bench.cpu import cpu_use

# A parent that spins, then starts a child that spins and waits for it, then stays alive (its
# tree is read while it still runs), so both kinds of child time are in its tree.
SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
PARENT = (
    SPIN.format(seconds=0.3)
    + "import subprocess, sys\n"
    + f"subprocess.run([sys.executable, '-c', {SPIN.format(seconds=0.3)!r}], check=True)\n"
    + "print('done', flush=True)\n"
    + "sys.stdin.read()\n"
)


def test_a_tree_counts_its_reaped_children_and_not_its_neighbours() -> None:
    neighbour = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=60)])
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        with cpu_use({"parent": parent.pid}) as used:
            assert parent.stdout is not None
            assert parent.stdout.readline() == "done\n"
        cpu = used["cpu"]
        # Both spins (0.6 s) and two interpreters' start; the neighbour spun as long meanwhile.
        assert 0.55 <= cpu.seconds["parent"] < 1.1
        assert cpu.machine_seconds >= cpu.seconds["parent"]
        assert 0 < cpu.busy <= 1
    finally:
        for proc in (neighbour, parent):
            proc.kill()
            proc.wait()
