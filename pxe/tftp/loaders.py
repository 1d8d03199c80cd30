"""The TFTP root: network boot loaders copied from Debian's packages, never rebuilt.

Firmware PXE clients only speak TFTP, so the root holds just what they load first; everything
after (kernels, initrds, images) goes over HTTP. The copies are refreshed at every serve start,
so a Debian update of ipxe or GRUB reaches the racks without a manual step, and replaced
atomically, so a transfer in progress never reads a half-written loader.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.runner import run

IPXE_DIR = Path("/usr/lib/ipxe")
GRUB_DIR = Path("/usr/lib/grub")
PXELINUX = Path("/usr/lib/PXELINUX/lpxelinux.0")
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")

# Client system architectures (RFC 4578 option 93, IANA registry).
ARCH_BIOS = 0
ARCH_X86_UEFI = 6
ARCH_X64_UEFI = 7
ARCH_EBC = 9  # announced by many x86-64 UEFI firmwares instead of 7
ARCH_ARM64_UEFI = 11
# The same firmwares booting by UEFI HTTP Boot announce these instead.
ARCH_X86_UEFI_HTTP = 15
ARCH_X64_UEFI_HTTP = 16
ARCH_ARM64_UEFI_HTTP = 19


@dataclass(frozen=True)
class Loader:
    name: str  # path inside the TFTP root
    source: Path
    package: str  # the Debian package that ships it
    required: bool = True


LOADERS = (
    Loader("undionly.kpxe", IPXE_DIR / "undionly.kpxe", "ipxe"),
    Loader("ipxe.efi", IPXE_DIR / "ipxe.efi", "ipxe"),
    # iPXE on the firmware's own network driver: what UEFI PXE clients on real NICs chainload.
    Loader("snponly.efi", IPXE_DIR / "snponly.efi", "ipxe", required=False),
    Loader("lpxelinux.0", PXELINUX, "pxelinux", required=False),
    *(Loader(name, SYSLINUX_BIOS / name, "syslinux-common", required=False)
      for name in ("ldlinux.c32", "libcom32.c32", "libutil.c32", "reboot.c32")),
)

# grub-mknetdir platforms: directory under /usr/lib/grub -> Debian package.
GRUB_PLATFORMS = {"x86_64-efi": "grub-efi-amd64-bin", "arm64-efi": "grub-efi-arm64-bin"}


class LoaderMissingError(FileNotFoundError):
    """A loader every PXE client class needs is not installed on this server."""

    def __init__(self, loader: Loader) -> None:
        super().__init__(f"network boot loader {loader.source} is missing: "
                         f"install the Debian package {loader.package}")


def prepare_tftp_root(data_dir: Path) -> Path:
    """Create or refresh ``<data_dir>/tftp`` with the loaders; return its path."""
    root = Path(data_dir) / "tftp"
    root.mkdir(parents=True, exist_ok=True)
    for loader in LOADERS:
        if not loader.source.is_file():
            if loader.required:
                raise LoaderMissingError(loader)
            continue
        _refresh(loader.source, root / loader.name)
    for platform in GRUB_PLATFORMS:
        if (GRUB_DIR / platform / "kernel.img").is_file():
            _refresh_grub(root, platform)
    return root


def loader_for_arch(root: Path) -> dict[int, str]:
    """Which file in ``root`` each client architecture boots first (what ProxyDHCP hands out)."""
    loaders = {ARCH_BIOS: "undionly.kpxe"}
    uefi = "snponly.efi" if (root / "snponly.efi").is_file() else "ipxe.efi"
    loaders[ARCH_X64_UEFI] = loaders[ARCH_EBC] = loaders[ARCH_X64_UEFI_HTTP] = uefi
    arm64 = "grub/arm64-efi/core.efi"
    if (root / arm64).is_file():
        loaders[ARCH_ARM64_UEFI] = arm64
    return loaders


def http_loader_for_arch(root: Path) -> dict[int, str]:
    """What UEFI HTTP Boot clients fetch from ``/loaders/``, by architecture: the x86-64 UEFI
    loader, for the HTTP code and for the PXE codes a client may send with ``HTTPClient``."""
    uefi = loader_for_arch(root)[ARCH_X64_UEFI]
    return dict.fromkeys((ARCH_X64_UEFI_HTTP, ARCH_X64_UEFI, ARCH_EBC), uefi)


def _refresh(source: Path, target: Path) -> None:
    if target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)  # follows Debian's /usr/lib/ipxe/ipxe.efi symlink
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _refresh_grub(root: Path, platform: str) -> None:
    """GRUB's network image (``grub/<platform>/core.efi``) and its modules, by grub-mknetdir.

    Rebuilt only when the installed GRUB is newer than the image, since it rewrites ~10 MB.
    """
    core = root / "grub" / platform / "core.efi"
    kernel = GRUB_DIR / platform / "kernel.img"
    if core.is_file() and core.stat().st_mtime >= kernel.stat().st_mtime:
        return
    run(["grub-mknetdir", f"--net-directory={root}", "--subdir=grub",
         "-d", str(GRUB_DIR / platform)])
