"""A small but structurally complete release, built in a fraction of a second for tests.

Same shape as the real one: a dom0 root tree packed as tar.zst with the Debian files the installer
edits, a gzip'd hypervisor placeholder, dom0 kernel and initrd beside it, and a manifest.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import zstandard

from common import release
from common.release import ArtefactKind

XEN_VERSION = "4.17"
KERNEL_VERSION = "6.1.0-test-amd64"

ROOT_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
    "etc/group": "root:x:0:\n",
    "etc/hostname": "debian\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/network/interfaces": "source /etc/network/interfaces.d/*\n",
    "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
    "usr/bin/xcp-dom0-marker": "#!/bin/sh\necho dom0\n",
}
ROOT_DIRS = ("boot", "var/log", "root", "tmp", "etc/network/interfaces.d", "etc/default")


def dom0_tar_zst(extra_bytes: int = 0, version: str = "0.1") -> bytes:
    """The packed root; ``extra_bytes`` of incompressible data make it as big as a bench needs."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ROOT_DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        files = {**ROOT_FILES, "etc/xcp-provision-release": f"{version}\n"}
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640 if name == "etc/shadow" else 0o755 if "bin/" in name else 0o644
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin")
        link.type, link.linkname = tarfile.SYMTYPE, "usr/bin"
        tar.addfile(link)
        if extra_bytes:
            info = tarfile.TarInfo("var/lib/payload.bin")
            info.size = extra_bytes
            tar.addfile(info, _Random(extra_bytes))
    return zstandard.ZstdCompressor(level=1, threads=-1).compress(raw.getvalue())


class _Random(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def build(
    out: Path, extra_bytes: int = 0, version: str = "0.1", kernel_bytes: int = 0
) -> release.Manifest:
    """``kernel_bytes`` gives the dom0 kernel that size (random bytes), for a target to fill."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "dom0-rootfs.tar.zst").write_bytes(dom0_tar_zst(extra_bytes, version))
    (out / f"xen-{XEN_VERSION}.gz").write_bytes(
        gzip.compress(b"placeholder hypervisor for tests, not bootable\n" * 64)
    )
    kernel = os.urandom(kernel_bytes) if kernel_bytes else b"placeholder kernel\n" * 512
    (out / f"vmlinuz-{KERNEL_VERSION}").write_bytes(kernel)
    (out / f"initrd.img-{KERNEL_VERSION}").write_bytes(b"placeholder initrd\n" * 512)
    artefacts = (
        release.describe(out, ArtefactKind.HYPERVISOR, f"xen-{XEN_VERSION}.gz", XEN_VERSION),
        release.describe(out, ArtefactKind.DOM0_ROOTFS, "dom0-rootfs.tar.zst", "12"),
        release.describe(
            out, ArtefactKind.DOM0_KERNEL, f"vmlinuz-{KERNEL_VERSION}", KERNEL_VERSION
        ),
        release.describe(
            out, ArtefactKind.DOM0_INITRD, f"initrd.img-{KERNEL_VERSION}", KERNEL_VERSION
        ),
    )
    manifest = release.Manifest("test", version, release.now(), artefacts, notes={"demo": "true"})
    release.save(out, manifest)
    return manifest
