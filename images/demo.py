"""A small, structurally complete release made in seconds, for `make run` and the tests.

Every artefact kind is present and listed in the manifest with its real file name, so the server
serves it and the installer lays it down exactly as a real release. What cannot be real in
seconds is a placeholder that says so in its own bytes, in its artefact version
(``demo-placeholder``) and in the manifest notes. Xen is real whenever the cache already holds
Debian's xen.gz (``xcp-provision images hypervisor`` puts it there).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from pathlib import Path

import zstandard

from common import dom0_layout, release
from common.dom0_layout import inside
from common.release import ArtefactKind
from images import xen
from images.cache import BuildCache, default_cache_dir
from images.overlay import install_overlay

PLACEHOLDER_VERSION = "demo-placeholder"
DEMO_VERSION = "demo"
DOM0_ROOTFS = "dom0-rootfs.tar.zst"
DOM0_KERNEL = "dom0-vmlinuz"
DOM0_INITRD = "dom0-initrd.img"
INSTALLER_KERNEL = "installer-vmlinuz"
INSTALLER_INITRD = "installer-initrd.img"
_KERNEL_NAME = "vmlinuz-0.0.0-demo-amd64"
_INITRD_NAME = "initrd.img-0.0.0-demo-amd64"

# The top of a Debian 12 (merged-/usr) root, as the real dom0 image has it.
_DIRS = (
    "boot", "dev", "etc/xcp-provision/hooks", "home", "media", "mnt", "opt", "proc", "root",
    "run", "srv", "sys", "tmp", "usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "var/lib",
    "var/log", "var/tmp",
)  # fmt: skip
_USR_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm) - xcp-provision demo dom0"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


def placeholder(what: str) -> bytes:
    return (
        f"XCP-PROVISION DEMO PLACEHOLDER: this is not a real {what}.\n"
        "Build real images with `xcp-provision images hypervisor|dom0|installer --out DIR`.\n"
    ).encode()


def _demo_root(root: Path, release_name: str) -> None:
    root.chmod(0o755)
    for name in _DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for link, target in _USR_LINKS.items():
        (root / link).symlink_to(target)
    (root / "boot" / _KERNEL_NAME).write_bytes(placeholder("Linux kernel"))
    (root / "boot" / _INITRD_NAME).write_bytes(placeholder("initrd"))
    (root / "vmlinuz").symlink_to(f"boot/{_KERNEL_NAME}")
    (root / "initrd.img").symlink_to(f"boot/{_INITRD_NAME}")
    (root / "etc" / "os-release").write_text(_OS_RELEASE)
    (root / "etc" / "hostname").write_text("localhost\n")
    (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "shadow").write_text("root:*:20000:0:99999:7:::\n")
    (root / "etc" / "shadow").chmod(0o640)
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "fstab").write_text("# written by the installer\n")
    (root / "etc" / "xcp-provision" / "DEMO").write_text(
        placeholder("dom0 root filesystem").decode()
    )
    install_overlay(root, release_name)
    # The real image has systemd's serial-getty unit; the demo carries a stand-in at its path
    # so the hvc0 getty symlink resolves inside the tree.
    getty = inside(root, dom0_layout.SERIAL_GETTY_UNIT)
    getty.parent.mkdir(parents=True, exist_ok=True)
    getty.write_text("# " + placeholder("systemd unit").decode())


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def pack_tree(tree: Path, out: Path) -> None:
    """tar.zst of ``tree`` with ``./``-relative names, as ``tar -C tree .`` writes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(tree, arcname=".", filter=_root_owned)
    out.write_bytes(zstandard.ZstdCompressor(level=10).compress(buffer.getvalue()))


def build_demo_release(out_dir: Path, cache: BuildCache | None = None) -> release.Manifest:
    """Write a demo release into ``out_dir`` and return its manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = out_dir.resolve().name
    cache = cache or BuildCache(default_cache_dir())
    artefacts = []
    placeholders = []

    cached = xen.cached_xen(cache)
    if cached:
        (out_dir / xen.XEN_FILE).write_bytes(cached.path.read_bytes())
        xen_version = cached.version
    else:
        (out_dir / xen.XEN_FILE).write_bytes(
            gzip.compress(placeholder("Xen hypervisor"), mtime=0)
        )
        xen_version = PLACEHOLDER_VERSION
        placeholders.append(ArtefactKind.HYPERVISOR.value)
    artefacts.append(
        release.describe(out_dir, ArtefactKind.HYPERVISOR, xen.XEN_FILE, xen_version)
    )

    with tempfile.TemporaryDirectory(prefix="demo-dom0-") as tmp:
        _demo_root(Path(tmp), name)
        pack_tree(Path(tmp), out_dir / DOM0_ROOTFS)
    artefacts.append(release.describe(out_dir, ArtefactKind.DOM0_ROOTFS, DOM0_ROOTFS, DEMO_VERSION))

    for kind, file, what in (
        (ArtefactKind.DOM0_KERNEL, DOM0_KERNEL, "dom0 Linux kernel"),
        (ArtefactKind.DOM0_INITRD, DOM0_INITRD, "dom0 initrd"),
        (ArtefactKind.INSTALLER_KERNEL, INSTALLER_KERNEL, "installer Linux kernel"),
        (ArtefactKind.INSTALLER_INITRD, INSTALLER_INITRD, "installer initramfs"),
    ):
        (out_dir / file).write_bytes(placeholder(what))
        artefacts.append(release.describe(out_dir, kind, file, PLACEHOLDER_VERSION))
        placeholders.append(kind.value)

    notes = {
        "demo": "true",
        "placeholders": ",".join(placeholders),
        "hypervisor": cached.source if cached else "placeholder (no Xen in the build cache)",
    }
    return release.add_artefacts(out_dir, artefacts, version=DEMO_VERSION, notes=notes)
