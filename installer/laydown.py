"""The product laid into the mounted root: the dom0 tree, Xen, and dom0's kernel and initrd.

The dom0 archive streams from the network through zstd into ``tar`` without touching a scratch
disk, a thread of its own feeding tar (:mod:`installer.handoff`), while what tar wrote goes on to
the disk (:mod:`installer.writeback`). Boot files keep their versioned names (the fallback menu
entry uses them) and get stable names beside them (``/boot/xen.gz``, ``/boot/vmlinuz``,
``/boot/initrd.img``) that the default entries use, so an upgrade only moves the stable names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from common import runner
from common.release import Artefact, ArtefactKind, Manifest
from hypervisor.grub import BootFiles
from installer import fetch
from installer.errors import FailedError
from installer.handoff import Handoff
from installer.writeback import BackgroundWriteback

log = logging.getLogger(__name__)

# Called with (artefact, bytes received so far).
ArtefactProgress = Callable[[Artefact, int], None]

# 128 KiB records: at tar's default of 10 KiB it made about 100,000 reads and as many writes
# for a 1 GiB dom0.
TAR_EXTRACT = (
    "tar", "--extract", "--file=-", "--blocking-factor=256", "--numeric-owner",
    "--preserve-permissions", "--xattrs", "--xattrs-include=*", "--same-owner",
)  # fmt: skip


class LaydownError(FailedError):
    """The dom0 tree or a boot file could not be written into the target root."""


@dataclass(frozen=True)
class LaidDown:
    default: BootFiles  # stable names, for the default entries
    fallback: BootFiles  # versioned names
    xen_version: str
    kernel_version: str


def lay_down(
    base: str, manifest: Manifest, root: Path, progress: ArtefactProgress | None = None
) -> LaidDown:
    """Extract dom0 into ``root``, then write Xen, kernel and initrd into ``root/boot``."""
    _extract_rootfs(base, manifest.artefact(ArtefactKind.DOM0_ROOTFS), root, progress)
    boot = root / "boot"
    boot.mkdir(exist_ok=True)
    xen_art = manifest.artefact(ArtefactKind.HYPERVISOR)
    xen = _write_boot_file(base, xen_art, boot, _name(xen_art, "xen", ".gz"), progress)
    kernel, initrd, kernel_version = _dom0_kernel(base, manifest, boot, progress)
    for stable, target in (("xen.gz", xen), ("vmlinuz", kernel), ("initrd.img", initrd)):
        _symlink(boot / stable, target)
    return LaidDown(
        default=BootFiles("/boot/xen.gz", "/boot/vmlinuz", "/boot/initrd.img"),
        fallback=BootFiles(f"/boot/{xen}", f"/boot/{kernel}", f"/boot/{initrd}"),
        xen_version=xen_art.version,
        kernel_version=kernel_version,
    )


def _name(art: Artefact, prefix: str, suffix: str = "") -> str:
    """The artefact's own file name when it is already versioned, else ``prefix-version``.

    Never the bare stable name (``xen.gz``): that one becomes a symlink to this file.
    """
    name = PurePosixPath(art.path).name
    if name.startswith(f"{prefix}-") and name.endswith(suffix):
        return name
    return f"{prefix}-{art.version or 'release'}{suffix}"


def _symlink(link: Path, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _extract_rootfs(
    base: str, art: Artefact, root: Path, progress: ArtefactProgress | None
) -> None:
    with tempfile.TemporaryFile() as errors, BackgroundWriteback(root):
        proc = runner.start(
            [*TAR_EXTRACT, f"--directory={root}"], stdin=subprocess.PIPE, stderr=errors
        )
        assert proc.stdin is not None
        to_tar = Handoff(proc.stdin.write, name=f"{art.path} into tar")
        cut = ""  # why tar's pipe broke, when it did; tar's exit and stderr say more
        try:
            fetch.fetch_artefact(
                base,
                art,
                to_tar.write,
                decompress=True,
                progress=(lambda n: progress(art, n)) if progress else None,
            )
            to_tar.close()
        except fetch.SinkError as exc:
            cut = exc.reason
            to_tar.abandon()
        except OSError as exc:  # from ``close``: the pipe broke under the last pieces
            cut = exc.strerror or str(exc)
        except BaseException:
            proc.kill()
            to_tar.abandon()
            proc.wait()
            raise
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        code = proc.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace").strip()
    if code != 0:
        raise LaydownError(f"tar failed (exit {code}) extracting {art.path} into {root}: {stderr}")
    if cut:
        raise LaydownError(f"tar stopped reading {art.path} before its end ({cut})")


def _write_boot_file(
    base: str, art: Artefact, boot: Path, name: str, progress: ArtefactProgress | None
) -> str:
    """Written under a temporary name and renamed, so a cut download leaves no half file."""
    tmp = boot / f".{name}.part"
    try:
        with open(tmp, "wb") as fh:
            fetch.fetch_artefact(
                base, art, fh.write, progress=(lambda n: progress(art, n)) if progress else None
            )
            fh.flush()
            os.fsync(fh.fileno())
    except (fetch.SinkError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.reason if isinstance(exc, fetch.SinkError) else exc.strerror or str(exc)
        raise LaydownError(f"cannot write {boot / name}: {reason}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, boot / name)
    return name


def _dom0_kernel(
    base: str, manifest: Manifest, boot: Path, progress: ArtefactProgress | None
) -> tuple[str, str, str]:
    """The release's kernel and initrd, or, when it ships none, those inside the dom0 tree."""
    if manifest.has(ArtefactKind.DOM0_KERNEL) and manifest.has(ArtefactKind.DOM0_INITRD):
        k_art = manifest.artefact(ArtefactKind.DOM0_KERNEL)
        i_art = manifest.artefact(ArtefactKind.DOM0_INITRD)
        kernel = _write_boot_file(base, k_art, boot, _name(k_art, "vmlinuz"), progress)
        initrd = _write_boot_file(base, i_art, boot, _name(i_art, "initrd.img"), progress)
        return kernel, initrd, k_art.version
    kernels = sorted(p.name for p in boot.glob("vmlinuz-*") if not p.is_symlink())
    if not kernels:
        raise LaydownError(
            f"release {manifest.name!r} has no dom0 kernel artefact and its dom0 tree has no "
            "/boot/vmlinuz-*: the release is incomplete"
        )
    version = kernels[-1].removeprefix("vmlinuz-")
    initrd = f"initrd.img-{version}"
    if not (boot / initrd).is_file():
        raise LaydownError(f"dom0 tree has /boot/{kernels[-1]} but no /boot/{initrd}")
    return kernels[-1], initrd, version
