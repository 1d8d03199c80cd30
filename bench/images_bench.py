"""Build times and sizes of the release images, against a bare debootstrap measured alongside.

    .venv/bin/python bench/images_bench.py            # fresh builds in a temporary cache
    .venv/bin/python bench/images_bench.py --cached   # through $XCP_PROVISION_CACHE

Prints one line per image (seconds, artefact sizes) and each build's ratio to the reference: a
plain ``debootstrap --variant=minbase bookworm`` from the same mirror, the floor every Debian
image build stands on. Needs root and the apt mirror.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common.runner import run
from images import dom0 as dom0_build
from images import xen
from images.aptsources import host_sources
from images.bootimage import build as installer_build
from images.cache import BuildCache, default_cache_dir
from images.demo import build_demo_release


def mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def timed(label: str, action):
    started = time.monotonic()
    result = action()
    seconds = time.monotonic() - started
    print(f"{label:24} {seconds:7.1f} s", flush=True)
    return result, seconds


def reference_debootstrap(work: Path) -> float:
    target = work / "reference-root"
    _, seconds = timed(
        "reference debootstrap",
        lambda: run(
            [
                "debootstrap",
                "--variant=minbase",
                "bookworm",
                target,
                host_sources("bookworm").mirror,
            ],
            timeout=1800,
        ),
    )
    shutil.rmtree(target)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="Use the real cache (may hit).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="images-bench-") as tmp:
        work = Path(tmp)
        cache = BuildCache(default_cache_dir() if args.cached else work / "cache")
        reference = reference_debootstrap(work)

        (hypervisor, _), xen_s = timed("hypervisor", lambda: xen.fetch_xen(cache))
        print(f"  xen.gz {mib(hypervisor.path)}  ({hypervisor.version})")
        (dom0, _), dom0_s = timed("dom0", lambda: dom0_build.build_dom0(cache))
        print(
            f"  rootfs {mib(dom0.rootfs)}, kernel {mib(dom0.kernel)}, initrd {mib(dom0.initrd)}"
            f"  ratio to debootstrap {dom0_s / reference:.1f}x"
        )
        (inst, _), inst_s = timed("installer", lambda: installer_build.build_installer(cache))
        print(
            f"  kernel {mib(inst.kernel)}, initramfs {mib(inst.initrd)}"
            f"  ratio to debootstrap {inst_s / reference:.1f}x"
        )
        _, demo_s = timed("demo release", lambda: build_demo_release(work / "demo", cache))
        print(f"  ratio of demo to debootstrap {demo_s / reference:.4f}x")
        print(f"  xen fetch ratio to debootstrap {xen_s / reference:.2f}x")


if __name__ == "__main__":
    main()
