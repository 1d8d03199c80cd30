"""Build the installer boot image: Debian's kernel and an initramfs that runs xcp-install.

The initramfs is a trimmed Debian 12 root (debootstrap + apt from this machine's mirror) with
the disk and network tools the installer calls, python3, our packages and their Python
dependencies copied from the environment running the build (so the image runs the versions the
test suite ran), only the kernel modules an installer needs, and our ``/init``. It is packed as
a zstd-compressed newc cpio, which Debian's kernel unpacks itself, and fetched by iPXE over HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import release
from common.dom0_layout import inside
from common.release_signature import keyring_bytes
from common.runner import run
from images import rootfs
from images.aptsources import host_sources
from images.cache import BuildCache, package_versions, source_digest
from images.errors import ImageError
from installer.release_trust import SITE_KEYRING

SUITE = "bookworm"
CACHE_KIND = "installer"
KERNEL = "installer-vmlinuz"
INITRD = "installer-initrd.img"
HERE = Path(__file__).parent
REPO = HERE.parents[1]
PACKAGES = (
    "python3",
    "tzdata",
    "libparted2",
    "e2fsprogs",
    "gdisk",
    "fdisk",
    "parted",
    "dosfstools",
    "mtools",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub2-common",
    "efibootmgr",
    "util-linux",
    "iproute2",
    "busybox",
    "curl",
    "ca-certificates",
    "gpgv",  # checks a release's signature against the site keyring (installer.release_trust)
    "kmod",
    "udev",
    "zstd",
    "ipmitool",
    "mdadm",  # software RAID1 as the primary disk (installer.block.mdadm)
)
# Python distributions the installer imports; their own dependencies are added from metadata.
DISTRIBUTIONS = (
    "pyparted",
    "pyudev",
    "urwid",
    "click",
    "rich",
    "jinja2",
    "defusedxml",
    "zstandard",
    "libpass",
)
# Our code in the image: the installer and the layers below it, nothing that builds images or
# serves them (import-linter's layers keep the installer from reaching above this list).
OUR_PACKAGES = ("common", "answerfiles", "hypervisor", "installer")
SITE = "/usr/local/lib/python3.11/dist-packages"
# Kernel module trees an installer needs: disks, NICs, USB keyboards and sticks, ext4, VLANs,
# efivarfs (a module in Debian's kernel) for the UEFI boot entry, and IPMI to read the BMC.
MODULE_TREES = (
    "drivers/ata", "drivers/block", "drivers/nvme", "drivers/scsi", "drivers/md",
    "drivers/virtio", "drivers/net/ethernet", "drivers/net/virtio_net.ko",
    "drivers/net/vmxnet3", "drivers/net/net_failover.ko", "drivers/net/mii.ko",
    "drivers/net/mdio.ko", "drivers/net/phy", "drivers/net/mdio", "drivers/net/pcs",
    "drivers/usb/host", "drivers/usb/storage", "drivers/usb/common", "drivers/usb/core",
    "drivers/hid", "drivers/input", "drivers/message", "drivers/dca", "drivers/ptp",
    "drivers/pps", "drivers/firmware", "drivers/char/hw_random", "drivers/char/ipmi",
    "drivers/cdrom",
    "drivers/scsi/virtio_scsi.ko", "fs/ext4", "fs/jbd2", "fs/mbcache.ko", "fs/fat", "fs/isofs",
    "fs/nls",  # code pages a vfat release medium (type="local") is mounted with
    "fs/efivarfs",
    "lib", "crypto", "arch/x86/crypto", "net/8021q", "net/802", "net/llc", "net/core", "net/ipv6",
    "net/packet", "net/core/failover.ko",
)  # fmt: skip
# mdadm's udev rule that assembles every array whose member appears: here it would start the
# stale arrays of reused disks (held, they could not be wiped) and the arrays of disks no plan
# names. The installer makes the one array it plans; the rule naming arrays' links stays.
AUTO_ASSEMBLY_RULE = "/lib/udev/rules.d/64-md-raid-assembly.rules"
# Never needed at install time; together they are most of a Debian root.
STRIP = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/bash-completion", "usr/share/common-licenses", "var/cache/apt", "var/cache/debconf",
    "var/lib/apt/lists", "var/log", "boot", "usr/lib/python3.11/test",
    "usr/lib/python3.11/idlelib", "usr/lib/python3.11/tkinter", "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/lib2to3", "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/config-3.11-x86_64-linux-gnu", "usr/share/grub/themes",
)  # fmt: skip
# gconv stays: mtools converts FAT names through iconv (CP850) and, without it, cannot open
# the EFI system partition ("Error setting code page", "Cannot initialize '::'").
_RD_ZSTD = "CONFIG_RD_ZSTD=y"
# Every module of the packages the installer runs must import inside the image, or the build
# fails here rather than on a host in the middle of an install.
IMPORT_CHECK = """\
import importlib, pkgutil
import answerfiles, common, hypervisor, installer
for package in (common, answerfiles, hypervisor, installer):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
"""
_ENTRY_POINT = """\
#!/usr/bin/python3
import sys

from installer.cli.main import main

sys.exit(main())
"""


class BootImageError(ImageError):
    """The installer boot image could not be built; the message names the step."""


@dataclass(frozen=True)
class InstallerImage:
    kernel: Path
    initrd: Path
    kernel_version: str
    build_seconds: float


def kernel_package() -> tuple[str, str]:
    """The versioned kernel package linux-image-amd64 points at today, with its version."""
    show = run(["apt-cache", "show", "--no-all-versions", "linux-image-amd64"]).stdout
    for line in show.splitlines():
        if line.startswith("Depends:"):
            name = line.split(":", 1)[1].split(",")[0].split("(")[0].strip()
            return name, package_versions([name])[name]
    raise BootImageError("apt-cache show linux-image-amd64 names no kernel package")


def distribution_versions() -> dict[str, str]:
    """DISTRIBUTIONS and everything they require (extras and Windows-only needs left out)."""
    versions: dict[str, str] = {}
    todo = list(DISTRIBUTIONS)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in versions:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise BootImageError(
                f"Python distribution {name} is not installed where the build runs; "
                "run scripts/setup.sh"
            ) from exc
        versions[name] = dist.version
        for requirement in dist.requires or ():
            if "extra ==" in requirement or "win32" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            if match:
                todo.append(match.group(0))
    return dict(sorted(versions.items()))


def _our_sources() -> list[Path]:
    return [*(REPO / name for name in OUR_PACKAGES), HERE]


def build_inputs(release_keyring: bytes | None = None) -> dict[str, object]:
    kernel, kernel_version = kernel_package()
    inputs: dict[str, object] = {
        "suite": SUITE,
        "packages": package_versions(PACKAGES),
        "kernel": {kernel: kernel_version},
        "python": distribution_versions(),
        "sources": source_digest(_our_sources()),
    }
    if release_keyring is not None:  # absent otherwise: images without a keyring keep their key
        inputs["release_keyring"] = hashlib.sha256(release_keyring).hexdigest()
    return inputs


def build_installer(
    cache: BuildCache, release_keyring: Path | None = None
) -> tuple[InstallerImage, bool]:
    """The installer image, built or from the cache. ``release_keyring`` (the site's public
    release key, ``gpg --export``): baked in, it makes the image check every release's
    signature unless an answer file turns the check off (installer.release_trust)."""
    keys = keyring_bytes(release_keyring) if release_keyring is not None else None
    inputs = build_inputs(keys)
    entry, built = cache.ensure(
        CACHE_KIND, inputs, functools.partial(_build_into, release_keyring=keys)
    )
    info = json.loads((entry / "installer.json").read_text())
    image = InstallerImage(
        entry / KERNEL, entry / INITRD, info["kernel_version"], float(info["build_seconds"])
    )
    return image, built


def add_to_release(release_dir: Path, image: InstallerImage) -> release.Manifest:
    release_dir = Path(release_dir)
    release_dir.mkdir(parents=True, exist_ok=True)
    artefacts = []
    for kind, src, name in (
        (release.ArtefactKind.INSTALLER_KERNEL, image.kernel, KERNEL),
        (release.ArtefactKind.INSTALLER_INITRD, image.initrd, INITRD),
    ):
        shutil.copyfile(src, release_dir / name)
        artefacts.append(release.describe(release_dir, kind, name, image.kernel_version))
    notes = {"installer": f"Debian 12 kernel {image.kernel_version}, initramfs running xcp-install"}
    return release.add_artefacts(release_dir, artefacts, version=image.kernel_version, notes=notes)


def _unpack_kernel(work: Path) -> tuple[Path, str]:
    name, _ = kernel_package()
    run(["apt-get", "download", name], cwd=work, timeout=900)
    debs = sorted(work.glob(f"{name}_*.deb"))
    if not debs:
        raise BootImageError(f"apt-get download {name} left no .deb in {work}")
    tree = work / "kernel"
    run(["dpkg-deb", "-x", debs[0], tree])
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BootImageError(f"{debs[0].name} holds no /boot/vmlinuz-*")
    version = kernels[0].name.removeprefix("vmlinuz-")
    config = (tree / "boot" / f"config-{version}").read_text()
    if _RD_ZSTD not in config.splitlines():
        raise BootImageError(f"kernel {version} cannot unpack a zstd initramfs ({_RD_ZSTD} unset)")
    return tree, version


def _copy_modules(kernel_tree: Path, root: Path, version: str) -> None:
    source = kernel_tree / "lib" / "modules" / version
    target = inside(root, f"/lib/modules/{version}")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    for tree in MODULE_TREES:
        src = source / "kernel" / tree
        dst = target / "kernel" / tree
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    _copy_dependencies(kernel_tree, target, version)
    run(["depmod", "-b", root, version])


def _copy_dependencies(kernel_tree: Path, target: Path, version: str) -> None:
    """Every module a copied one needs, wherever the kernel keeps it: without them modprobe
    fails on unknown symbols and what the module drives never appears (sd_mod and nvme_core
    need block/t10-pi.ko, so no SATA, SAS or NVMe disk; igb needs i2c-algo-bit)."""
    run(["depmod", "-b", kernel_tree, version])
    source = kernel_tree / "lib" / "modules" / version
    needs: dict[str, list[str]] = {}
    for line in (source / "modules.dep").read_text().splitlines():
        module, _, deps = line.partition(":")
        needs[module] = deps.split()
    todo = [path.relative_to(target).as_posix() for path in target.rglob("*.ko*")]
    seen = set(todo)
    while todo:
        for dep in needs.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                (target / dep).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / dep, target / dep)
                todo.append(dep)


def _copy_python(root: Path) -> None:
    site = inside(root, SITE)
    site.mkdir(parents=True, exist_ok=True)
    for name in distribution_versions():
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if "__pycache__" in file.parts or file.parts[0] == "..":
                continue
            dst = site / file
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(dist.locate_file(file)), dst)
    # Wheels ship their extensions with symbols (zstandard's alone is over 20 MB).
    extensions = sorted(str(path) for path in site.rglob("*.so"))
    if extensions:
        run(["strip", "--strip-unneeded", *extensions])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in OUR_PACKAGES:
        shutil.copytree(REPO / package, site / package, ignore=ignore, dirs_exist_ok=True)
    entry = inside(root, "/usr/local/bin/xcp-install")
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(_ENTRY_POINT)
    entry.chmod(0o755)


def _install_boot_files(root: Path) -> None:
    init = inside(root, "/init")
    shutil.copyfile(HERE / "init", init)
    init.chmod(0o755)
    script = inside(root, "/usr/share/udhcpc/xcp-provision.script")
    script.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "udhcpc.script", script)
    script.chmod(0o755)
    # Kernel names (eth0...) as in dom0, whose image masks the same policy: the installer
    # writes dom0's network config with the names it sees here.
    mask = inside(root, "/etc/systemd/network/99-default.link")
    mask.parent.mkdir(parents=True, exist_ok=True)
    mask.unlink(missing_ok=True)
    mask.symlink_to("/dev/null")
    inside(root, "/etc/hostname").write_text("xcp-installer\n")
    inside(root, "/etc/resolv.conf").unlink(missing_ok=True)
    inside(root, "/etc/resolv.conf").write_text("")


def install_release_keyring(root: Path, keys: bytes) -> Path:
    """The site keyring where the installer looks for it (``release_trust.SITE_KEYRING``)."""
    target = inside(root, str(SITE_KEYRING))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(keys)
    target.chmod(0o644)
    return target


def _strip(root: Path) -> None:
    rule = inside(root, AUTO_ASSEMBLY_RULE)
    if not rule.is_file():
        raise BootImageError(
            f"mdadm's auto-assembly rule {AUTO_ASSEMBLY_RULE} is not in the "
            "image; find where mdadm puts it and remove it there"
        )
    rule.unlink()
    for rel in STRIP:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            path.mkdir()
    for pattern in ("usr/lib/grub/*/*.module", "usr/lib/grub/*/*.image", "**/__pycache__"):
        for path in root.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def pack_cpio_zst(root: Path, out: Path) -> None:
    """newc cpio (what the kernel unpacks), zstd-compressed, names relative to the root."""
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in (*dirnames, *sorted(filenames)):
            names.append(os.path.relpath(os.path.join(dirpath, name), root))
    raw = out.with_suffix(".cpio")
    run(
        ["cpio", "--create", "--format=newc", "--quiet", "--directory", root, "--file", raw],
        input="\n".join(names) + "\n",
        timeout=900,
    )
    # Level 9: within 1% of level 12's size at less than half its time (measured: 72 MiB).
    run(["zstd", "-q", "-T0", "-9", "--rm", "-f", raw, "-o", out], timeout=1800)


def _build_into(out: Path, release_keyring: bytes | None = None) -> None:
    started = time.monotonic()
    sources = host_sources(SUITE)
    with tempfile.TemporaryDirectory(prefix="installer-root-", dir=out.parent) as tmp:
        work = Path(tmp)
        root = work / "root"
        rootfs.debootstrap(root, SUITE, sources)
        with rootfs.chroot_mounts(root):
            rootfs.apt_install(root, SUITE, sources, PACKAGES)
        kernel_tree, version = _unpack_kernel(work)
        shutil.copyfile(kernel_tree / "boot" / f"vmlinuz-{version}", out / KERNEL)
        _copy_modules(kernel_tree, root, version)
        _copy_python(root)
        _install_boot_files(root)
        if release_keyring is not None:
            install_release_keyring(root, release_keyring)
        _strip(root)
        rootfs.chroot(root, "/usr/bin/python3", "-c", IMPORT_CHECK)
        pack_cpio_zst(root, out / INITRD)
    (out / "installer.json").write_text(
        json.dumps(
            {"kernel_version": version, "build_seconds": round(time.monotonic() - started, 1)}
        )
        + "\n"
    )
