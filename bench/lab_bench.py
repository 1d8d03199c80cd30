"""How long the real boot takes under TCG: one VM, then two at once (one BIOS, one UEFI).

Goals: one VM from power-on to in-pool in 5 minutes or less; two at once in 8.
Each figure is also given as a ratio to the firmware's own time to its first DHCP answer in the
same run, a reference that moves with the machine's load and TCG speed rather than with our code.

    .venv/bin/python bench/lab_bench.py [--results DIR] [--timeout S] [--no-build] [--only one|two]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from lab.harness import LabOptions, LabReport, run_lab
from lab.timeline import Stage, render_table

GOALS = {"one": 300.0, "two": 480.0}
FIRMWARES = {"one": ("bios",), "two": ("bios", "uefi")}


def _figures(name: str, report: LabReport) -> list[str]:
    lines = [f"== {name}: {len(report.timelines)} VM(s), {'PASS' if report.ok else 'FAIL'}"]
    lines.append(render_table(report.timelines))
    slowest = 0.0
    for tl in report.timelines:
        done = tl.seen.get(Stage.IN_POOL)
        dhcp = tl.seen.get(Stage.DHCP)
        if done is None:
            where = tl.first_missing()
            lines.append(f"{tl.vm} ({tl.firmware}): not in pool, stopped before {where}")
            slowest = float("inf")
            continue
        slowest = max(slowest, done)
        ratio = f"{done / dhcp:.1f}x its firmware's DHCP time ({dhcp:.1f} s)" if dhcp else ""
        lines.append(f"{tl.vm} ({tl.firmware}): power-on to in-pool {done:.1f} s, {ratio}")
    goal = GOALS[name]
    verdict = "met" if slowest <= goal else "MISSED"
    if slowest == float("inf"):
        lines.append(f"goal {goal:.0f} s: MISSED (a VM never reached the pool)")
    else:
        lines.append(
            f"goal {goal:.0f} s: {verdict} (slowest VM {slowest:.1f} s, {slowest / goal:.2f} of it)"
        )
    if report.figures:
        lines.append(", ".join(f"{k} {v}" for k, v in report.figures.items()))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--results", type=Path, default=Path("results") / f"bench-lab-{stamp}")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--only", choices=sorted(GOALS))
    args = parser.parse_args()
    ok = True
    build = not args.no_build
    for name in [args.only] if args.only else ["one", "two"]:
        options = LabOptions(
            results=args.results / name,
            firmwares=FIRMWARES[name],
            timeout=args.timeout,
            build=build,
        )
        report = run_lab(options, progress=lambda line: print(f"  {line}", flush=True))
        build = False  # the first run built or checked the release
        print("\n".join(_figures(name, report)), flush=True)
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
