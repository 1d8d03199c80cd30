"""The hypervisor artefact: Xen from Debian's package, or an imported xen.gz.

Nothing but the apt mirror is reachable from the build machines, so Xen comes from Debian's
``xen-hypervisor-4.17-amd64`` via ``apt-get download`` (no install on the build host), unpacked
with ``dpkg-deb``. Any xen.gz must carry a multiboot2 header: GRUB boots it with ``multiboot2``,
so a file without one would install fine and then never boot.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from common import release
from common.runner import run
from images.cache import BuildCache, package_versions
from images.errors import ImageError

XEN_PACKAGE = "xen-hypervisor-4.17-amd64"
XEN_FILE = "xen.gz"
CACHE_KIND = "hypervisor"
_MB2_MAGIC = 0xE85250D6
_MB2_SEARCH = 32768  # the multiboot2 header lies 8-byte aligned in the first 32 KiB


class HypervisorError(ImageError):
    """The hypervisor could not be fetched, or a file given as xen.gz is not one."""


@dataclass(frozen=True)
class XenImage:
    path: Path
    version: str
    source: str  # where it came from: the Debian package and version, or the imported file


def check_multiboot2(path: Path) -> None:
    """Refuse a file that is not a gzip-compressed multiboot2 kernel."""
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(_MB2_SEARCH + 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise HypervisorError(f"{path}: not a gzip-compressed Xen image ({exc})") from exc
    for offset in range(0, min(len(head) - 4, _MB2_SEARCH), 8):
        if struct.unpack_from("<I", head, offset)[0] == _MB2_MAGIC:
            return
    raise HypervisorError(f"{path}: no multiboot2 header in its first 32 KiB; is it xen.gz?")


def fetch_xen(cache: BuildCache) -> tuple[XenImage, bool]:
    """Xen from Debian's package, through the cache; also says whether it was fetched now."""
    versions = package_versions([XEN_PACKAGE])
    entry, built = cache.ensure(CACHE_KIND, {"packages": versions}, _download_xen)
    return _cached_image(entry), built


def cached_xen(cache: BuildCache) -> XenImage | None:
    """The newest Xen in the cache, whatever apt would fetch today, or None."""
    entry = cache.latest(CACHE_KIND)
    return _cached_image(entry) if entry else None


def _cached_image(entry: Path) -> XenImage:
    info = json.loads((entry / "xen.json").read_text())
    return XenImage(entry / XEN_FILE, info["version"], info["source"])


def _download_xen(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="xen-deb-") as tmp:
        work = Path(tmp)
        run(["apt-get", "download", XEN_PACKAGE], cwd=work, timeout=600)
        debs = sorted(work.glob(f"{XEN_PACKAGE}_*.deb"))
        if not debs:
            raise HypervisorError(f"apt-get download {XEN_PACKAGE} left no .deb in {work}")
        version = run(["dpkg-deb", "-f", debs[0], "Version"]).stdout.strip()
        tree = work / "tree"
        run(["dpkg-deb", "-x", debs[0], tree])
        found = sorted((tree / "boot").glob("xen-*.gz"))
        if not found:
            raise HypervisorError(f"{debs[0].name} holds no /boot/xen-*.gz")
        check_multiboot2(found[0])
        shutil.copyfile(found[0], out / XEN_FILE)
    source = f"Debian {XEN_PACKAGE} {version} ({found[0].name})"
    (out / "xen.json").write_text(json.dumps({"version": version, "source": source}) + "\n")


def add_to_release(release_dir: Path, image: XenImage) -> release.Manifest:
    """Copy xen.gz into the release (a copy: corrupting one must not corrupt the cache)."""
    release_dir = Path(release_dir)
    release_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.path, release_dir / XEN_FILE)
    kind = release.ArtefactKind.HYPERVISOR
    artefact = release.describe(release_dir, kind, XEN_FILE, image.version)
    return release.add_artefacts(
        release_dir, [artefact], version=image.version, notes={"hypervisor": image.source}
    )


def import_xen(path: Path, version: str = "") -> XenImage:
    """A xen.gz given by the operator (their own Xen build, XCP-ng's): checked, not trusted."""
    path = Path(path)
    if not path.is_file():
        raise HypervisorError(f"{path}: no such file")
    check_multiboot2(path)
    return XenImage(path, version or "imported", f"imported from {path.resolve()}")
