"""Plan + partition + filesystems of a 100 GiB sparse loop disk, against sgdisk + mkfs.

    sudo .venv/bin/python bench/partition_bench.py [--size-gib 100] [--rounds 3]

Ours: describe the disk, make the plan, ``apply_plan`` (re-check, wipe, pyparted GPT, partition
nodes, wipe inside the new partitions, mkfs.ext3 x2, mkfs.vfat, mkswap). Reference, measured in
the same run on a second image of the same size: ``wipefs`` + ``sgdisk`` writing the very same
geometry, ``partx --add``, and the same mkfs commands. Prints the median of each and the ratio;
the difference is what the guard rails, the signature wiping and pyparted cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from answerfiles.model import AnswerFile, PrimaryDisk
from common.runner import run
from installer.block import loop, nodes
from installer.discovery import Hardware, describe_disk
from installer.partition import apply_plan
from installer.plan import BootMode, Plan, make_plan

GIB = 1 << 30


def ours(device: str) -> tuple[float, Plan]:
    began = time.perf_counter()
    plan = make_plan(AnswerFile(primary_disk=PrimaryDisk(device)),
                     Hardware((describe_disk(device),)), BootMode.UEFI)
    apply_plan(plan)
    return time.perf_counter() - began, plan


def reference(device: str, plan: Plan) -> float:
    """The same layout the way a shell script would write it."""
    began = time.perf_counter()
    run(["wipefs", "--all", "--quiet", device])
    args = ["sgdisk", "--clear"]
    for spec in plan.primary.partitions:
        args += [f"--new={spec.number}:{spec.start}:{spec.end}",
                 f"--typecode={spec.number}:{spec.gpt_type}",
                 f"--change-name={spec.number}:{spec.name}"]
    run([*args, device])
    nodes.add_partitions(device, [p.number for p in plan.primary.partitions])
    for spec in plan.primary.partitions:
        node = nodes.partition_path(device, spec.number)
        if spec.filesystem == "ext3":
            run(["mkfs.ext3", "-F", "-q", "-L", spec.label or "", node])
        elif spec.filesystem == "vfat":
            run(["mkfs.vfat", "-F", "32", "-n", spec.label or "", node])
        elif spec.filesystem == "swap":
            run(["mkswap", "--label", spec.label or "", node])
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    ours_times: list[float] = []
    ref_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="partition-bench-") as tmp:
        a, b = Path(tmp) / "ours.img", Path(tmp) / "reference.img"
        for image in (a, b):
            with open(image, "wb") as fh:
                fh.truncate(options.size_gib * GIB)
        with loop.attached(a) as dev_a, loop.attached(b) as dev_b:
            for _ in range(options.rounds):
                seconds, plan = ours(dev_a)
                ours_times.append(seconds)
                ref_times.append(reference(dev_b, plan))
    mine, theirs = statistics.median(ours_times), statistics.median(ref_times)
    print(f"disk: {options.size_gib} GiB sparse loop image, {options.rounds} rounds, medians")
    print(f"xcp-install plan+partition+mkfs: {mine:.3f} s  (all: "
          f"{', '.join(f'{t:.3f}' for t in ours_times)})")
    print(f"sgdisk + mkfs reference:         {theirs:.3f} s  (all: "
          f"{', '.join(f'{t:.3f}' for t in ref_times)})")
    print(f"ratio ours/reference: {mine / theirs:.2f}")


if __name__ == "__main__":
    main()
