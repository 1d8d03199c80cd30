"""A whole install with a 1 GiB dom0 image, against dd of the same bytes plus mkfs.

The install is the real thing: the release is served over HTTP on loopback by nginx (a process
of its own, as the release server is another machine for a real host), the dom0 archive is
downloaded, sha256-checked, zstd-decompressed and extracted in one pass onto a freshly
partitioned 60 GiB sparse loop disk, then the host is configured and GRUB written. The reference,
measured in the same run on the same kind of disk: the same GPT, the same mkfs commands, then
``dd`` of the uncompressed dom0 bytes onto the root partition (``conv=fsync``) — the floor any
installer writing those bytes could reach. Goal: 1.3x or better.

Both run in this process (the same priority, printed), in rounds that alternate which goes first;
the ratio is taken per round and printed as its median and range, with the install's time per
step (from its own progress events) beside it.

    .venv/bin/python bench/install_bench.py [--gib 1.0] [--boot-mode bios|uefi] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import zstandard  # noqa: E402
from support.nginx import running_nginx  # noqa: E402
from support.serve import free_port  # noqa: E402

from answerfiles.parse import parse_answerfile  # noqa: E402
from common import release  # noqa: E402
from common.release import ArtefactKind  # noqa: E402
from common.runner import run  # noqa: E402
from installer import install, partition  # noqa: E402
from installer.block import loop, mkfs, nodes  # noqa: E402
from installer.discovery import Hardware, describe_disk  # noqa: E402
from installer.plan import BootMode, make_plan  # noqa: E402
from installer.progress import BuildDone, Event  # noqa: E402

FILE_BYTES = 512 * 1024


def _dom0_tar(path: Path, total: int) -> None:
    """A dom0-like tree: many files, half random and half zeros (compresses about 2:1)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("boot", "etc", "var/log", "usr/lib/payload"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        shadow = b"root:*:19000:0:99999:7:::\n"
        info = tarfile.TarInfo("etc/shadow")
        info.size, info.mode = len(shadow), 0o640
        tar.addfile(info, io.BytesIO(shadow))
        for i in range(total // FILE_BYTES):
            data = os.urandom(FILE_BYTES // 2) + bytes(FILE_BYTES // 2)
            info = tarfile.TarInfo(f"usr/lib/payload/f{i:05d}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _release(top: Path, gib: float) -> Path:
    out = top / "release"
    out.mkdir()
    tar = top / "dom0.tar"
    _dom0_tar(tar, int(gib * (1 << 30)))
    with open(tar, "rb") as src, open(out / "dom0-rootfs.tar.zst", "wb") as dst:
        zstandard.ZstdCompressor(level=3, threads=-1).copy_stream(src, dst)
    (out / "xen-4.17.gz").write_bytes(b"\x1f\x8b" + bytes(64))
    (out / "vmlinuz-6.1").write_bytes(bytes(8 << 20))
    (out / "initrd.img-6.1").write_bytes(bytes(16 << 20))
    artefacts = (
        release.describe(out, ArtefactKind.HYPERVISOR, "xen-4.17.gz", "4.17"),
        release.describe(out, ArtefactKind.DOM0_ROOTFS, "dom0-rootfs.tar.zst", "bench"),
        release.describe(out, ArtefactKind.DOM0_KERNEL, "vmlinuz-6.1", "6.1"),
        release.describe(out, ArtefactKind.DOM0_INITRD, "initrd.img-6.1", "6.1"),
    )
    release.save(out, release.Manifest("bench", "1", release.now(), artefacts))
    return tar


def _discard(image: Path) -> None:
    """Delete a side's disk once no loop device holds it (one detached while busy lets go
    later), then write out what is dirty, so what one side left is not the next one's to do."""
    deadline = time.monotonic() + 30
    while run(["losetup", "--associated", image]).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"{image} is still attached to a loop device after 30 s")
        time.sleep(0.1)
    image.unlink()
    os.sync()


def _image(top: Path, name: str) -> Path:
    image = top / name
    with open(image, "wb") as fh:
        fh.truncate(60 << 30)
    return image


class StepClock:
    """An install reporter that keeps when each step began, to time the steps."""

    def __init__(self) -> None:
        self.began: dict[str, float] = {}

    def event(self, event: Event) -> None:
        self.began.setdefault(event.step, time.perf_counter())

    def failed(self, reason: str, log_text: str) -> None:
        raise SystemExit(f"the install failed: {reason}")

    def done(self, built: BuildDone) -> None:
        pass

    def steps(self, end: float) -> dict[str, float]:
        """Seconds spent in each step, the last one ending at ``end``."""
        ordered = sorted(self.began.items(), key=lambda item: item[1])
        ends = [t for _, t in ordered[1:]] + [end]
        return {step: stop - t for (step, t), stop in zip(ordered, ends, strict=True)}


def _time_install(top: Path, url: str, mode: BootMode) -> tuple[float, dict[str, float]]:
    image = _image(top, "install.img")
    xml = (
        f'<installation><primary-disk>sda</primary-disk><source type="url">{url}/release'
        '</source><admin-interface name="eth0" proto="dhcp"/></installation>'
    )
    answers = parse_answerfile(xml, "bench.xml").answers
    clock = StepClock()
    start = time.perf_counter()
    install.install(answers, target=str(image), boot_mode=mode, reporters=(clock,))
    end = time.perf_counter()
    _discard(image)
    return end - start, clock.steps(end)


def _time_reference(top: Path, tar: Path, mode: BootMode) -> float:
    """Same GPT (written untimed), then timed: the same mkfs commands and dd of the bytes."""
    image = _image(top, "reference.img")
    with loop.attached(image) as device:
        disk = describe_disk(device)
        answers = parse_answerfile(
            f"<installation><primary-disk>{device}</primary-disk><source type=\"url\">"
            "http://x/</source><admin-interface name=\"eth0\" proto=\"dhcp\"/></installation>",
            "ref.xml",
        ).answers
        plan = make_plan(answers, Hardware((disk,)), mode)
        partition.apply_plan(plan)  # untimed: the GPT; its filesystems are made again below
        made = nodes.wait_for_nodes(device, [p.number for p in plan.primary.partitions])
        start = time.perf_counter()
        for spec in plan.primary.partitions:
            node = made[spec.number]
            if spec.filesystem == "ext3":
                mkfs.ext(node, spec.label or "x")
            elif spec.filesystem == "vfat":
                mkfs.vfat(node, spec.label or "X")
            elif spec.filesystem == "swap":
                mkfs.swap(node, spec.label or "x")
        root = made[plan.partition("root").number]
        run(["dd", f"if={tar}", f"of={root}", "bs=4M", "conv=fsync", "status=none"])
        elapsed = time.perf_counter() - start
    _discard(image)
    return elapsed


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="dom0 size, uncompressed")
    parser.add_argument("--boot-mode", choices=["bios", "uefi"], default="bios")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mode = BootMode(args.boot_mode)
    installs: list[float] = []
    references: list[float] = []
    steps: dict[str, list[float]] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="install-bench-", dir="/var/tmp") as tmp:
        top = Path(tmp)
        tar = _release(top, args.gib)
        packed = (top / "release/dom0-rootfs.tar.zst").stat().st_size
        print(f"dom0 image: {tar.stat().st_size / 2**20:.0f} MiB uncompressed, "
              f"{packed / 2**20:.0f} MiB as tar.zst; boot mode {mode.value}; {os.cpu_count()} "
              f"CPUs, load average {load:.2f} at start; install and reference both at nice "
              f"{os.getpriority(os.PRIO_PROCESS, 0)}")  # fmt: skip
        port = free_port()
        server = f"server {{ listen 127.0.0.1:{port}; root {top}; sendfile on; }}"
        with running_nginx(top / "nginx", port, server) as url:
            os.sync()  # the release just written; after this, each side syncs what it left
            for round_number in range(args.rounds):
                if round_number % 2:
                    references.append(_time_reference(top, tar, mode))
                installed, took = _time_install(top, url, mode)
                installs.append(installed)
                for step, seconds in took.items():
                    steps.setdefault(step, []).append(seconds)
                if not round_number % 2:
                    references.append(_time_reference(top, tar, mode))
                print(f"  round {round_number + 1}: install {installs[-1]:.2f} s, reference "
                      f"{references[-1]:.2f} s: {installs[-1] / references[-1]:.2f}x", flush=True)
    ratios = [i / r for i, r in zip(installs, references, strict=True)]
    print(f"full install over HTTP (partition, mkfs, download+sha256+zstd+tar, config, GRUB): "
          f"{spread(installs, ' s')}")
    print("  by step: " + ", ".join(f"{step} {spread(values, ' s')}"
                                    for step, values in steps.items()))  # fmt: skip
    print(f"reference (same mkfs + dd of the same bytes, conv=fsync): {spread(references, ' s')}")
    met = sum(r <= 1.3 for r in ratios)
    print(f"ratio install/reference per round: {spread(ratios, 'x')} (goal: 1.3x or better; "
          f"met in {met} of {len(ratios)} rounds)")


if __name__ == "__main__":
    main()
