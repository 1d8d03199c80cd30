"""How long the real boot takes under TCG: one VM, then two at once (one BIOS, one UEFI), then
the rack: four VMs with BMCs, powered on through the API, then reinstalled by one rolling
reinstall two at a time.

Goals: one VM from power-on to in-pool in 5 minutes or less; two at once in 8; the rack's four in
10, and their rolling reinstall in 10; power: status under 1 s from the cache, a power action
acknowledged under 5 s. Each boot figure is also given as a ratio to the firmware's own time to
its first DHCP answer in the same run, a reference that moves with the machine's load and TCG
speed rather than with our code.

    .venv/bin/python bench/lab_bench.py [--results DIR] [--timeout S] [--no-build]
                                        [--only one|two|rack]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from lab.harness import LabOptions, LabReport, run_lab
from lab.rack import RackOptions, RackReport, mixed_firmwares, run_rack
from lab.timeline import Stage, render_table

GOALS = {"one": 300.0, "two": 480.0, "rack": 600.0}
FIRMWARES = {"one": ("bios",), "two": ("bios", "uefi"), "rack": mixed_firmwares(4)}
ROLL_GOAL = 600.0
ROLL_FIGURE = "reinstall: roll seconds, request to finished"
POWER_GOALS = {  # figure of lab.rack -> its goal in seconds
    "power: status from the cache, seconds": 1.0,
    "power: reinstall with power acknowledged, slowest, seconds": 5.0,
}


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
    if isinstance(report, RackReport):
        lines += _rack_figures(report)
    return lines


def _rack_figures(report: RackReport) -> list[str]:
    lines = ["rolling reinstall (seconds from the roll starting that VM):"]
    lines.append(render_table(report.reinstall_timelines))
    roll = report.figures.get(ROLL_FIGURE)
    verdict = "MISSED" if roll is None or roll > ROLL_GOAL else "met"
    lines.append(f"roll goal {ROLL_GOAL:.0f} s: {verdict} ({roll} s)")
    for figure, goal in POWER_GOALS.items():
        value = report.figures.get(figure)
        verdict = "MISSED" if value is None or value > goal else "met"
        lines.append(f"{figure}: {value} (goal {goal} s: {verdict})")
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
    for name in [args.only] if args.only else list(GOALS):
        options = LabOptions(
            results=args.results / name,
            firmwares=FIRMWARES[name],
            timeout=args.timeout,
            build=build,
        )

        def say(line: str) -> None:
            print(f"  {line}", flush=True)

        report: LabReport
        if name == "rack":
            report = run_rack(RackOptions(options, reinstall=True, max_parallel=2), progress=say)
        else:
            report = run_lab(options, progress=say)
        build = False  # the first run built or checked the release
        print("\n".join(_figures(name, report)), flush=True)
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
