"""Build the real dom0 image: Debian 12 with Linux, Xen's tools, SSH and our first-boot agent.

debootstrap lays a minimal Debian from the machine's own apt mirror (the only reachable source
on build hosts), apt then installs the rest inside the chroot with the security suite enabled,
and the tree is packed as tar.zst with the kernel and initrd beside it. The result is bootable
as a PV dom0 under Xen from a disk whose root is found by LABEL: the installer writes fstab, the
hostname, the network stanza and the first-boot config into it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import dom0_layout, release
from common.dom0_layout import inside
from images import rootfs
from images.aptsources import host_sources
from images.cache import BuildCache, key_of, package_versions, source_digest
from images.errors import ImageError
from images.overlay import install_overlay

SUITE = "bookworm"
CACHE_KIND = "dom0"
ROOTFS = "dom0-rootfs.tar.zst"
KERNEL = "dom0-vmlinuz"
INITRD = "dom0-initrd.img"
PACKAGES = (
    "linux-image-amd64",
    "initramfs-tools",
    "xen-system-amd64",  # xen-hypervisor-4.17-amd64 + xen-utils-4.17
    "bridge-utils",
    "openvswitch-switch",
    "openssh-server",
    "systemd-sysv",
    "udev",
    "mdadm",  # its initramfs hook assembles a software RAID1 primary disk before root mounts
    "kmod",
    "python3",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "iputils-ping",
    "netbase",
    "ca-certificates",
    "procps",
    "less",
)
# What the image is made from, for its cache key: this builder, the payload and its contract.
_REPO = Path(__file__).resolve().parents[1]
_SOURCES = [
    Path(__file__),
    _REPO / "images" / "rootfs.py",
    _REPO / "images" / "aptsources.py",
    _REPO / "dom0",
    _REPO / "common" / "dom0_layout.py",
]
# Host keys made at first boot: hosts cloned from one image must not share them.
_SSH_KEYGEN_UNIT = """\
[Unit]
Description=Generate this host's SSH host keys (xcp-provision)
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
_SSH_KEYGEN = "/etc/systemd/system/xcp-provision-ssh-hostkeys.service"
_SSH_KEYGEN_WANTS = "/etc/systemd/system/multi-user.target.wants/xcp-provision-ssh-hostkeys.service"


class BuildError(ImageError):
    """The dom0 image build failed; the message names the step."""


@dataclass(frozen=True)
class Dom0Image:
    rootfs: Path
    kernel: Path
    initrd: Path
    version: str  # our release identity of the image, also in /etc/xcp-provision/release
    kernel_version: str
    build_seconds: float


def build_inputs() -> dict[str, object]:
    """Everything the image depends on: package versions, our sources, the suite."""
    return {
        "suite": SUITE,
        "packages": package_versions(PACKAGES),
        "sources": source_digest(_SOURCES),
    }


def build_dom0(cache: BuildCache) -> tuple[Dom0Image, bool]:
    """The dom0 image for today's inputs, built now unless the cache has it."""
    inputs = build_inputs()
    version = f"debian12-xcp.{key_of(inputs)[:8]}"
    entry, built = cache.ensure(CACHE_KIND, inputs, lambda out: _build_into(out, version))
    info = json.loads((entry / "dom0.json").read_text())
    image = Dom0Image(
        rootfs=entry / ROOTFS,
        kernel=entry / KERNEL,
        initrd=entry / INITRD,
        version=info["version"],
        kernel_version=info["kernel_version"],
        build_seconds=float(info["build_seconds"]),
    )
    return image, built


def add_to_release(release_dir: Path, image: Dom0Image) -> release.Manifest:
    release_dir = Path(release_dir)
    release_dir.mkdir(parents=True, exist_ok=True)
    artefacts = []
    for kind, src, name, version in (
        (release.ArtefactKind.DOM0_ROOTFS, image.rootfs, ROOTFS, image.version),
        (release.ArtefactKind.DOM0_KERNEL, image.kernel, KERNEL, image.kernel_version),
        (release.ArtefactKind.DOM0_INITRD, image.initrd, INITRD, image.kernel_version),
    ):
        shutil.copyfile(src, release_dir / name)
        artefacts.append(release.describe(release_dir, kind, name, version))
    notes = {"dom0": f"Debian 12 ({SUITE}) dom0 {image.version}, kernel {image.kernel_version}"}
    return release.add_artefacts(release_dir, artefacts, version=image.version, notes=notes)


def _kernel_files(root: Path) -> tuple[Path, Path, str]:
    kernels = sorted(inside(root, "/boot").glob("vmlinuz-*"))
    if not kernels:
        raise BuildError(f"no kernel in {root}/boot after installing linux-image-amd64")
    kernel_version = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = inside(root, f"/boot/initrd.img-{kernel_version}")
    if not initrd.is_file():
        raise BuildError(f"no initrd for kernel {kernel_version} in {root}/boot")
    return kernels[-1], initrd, kernel_version


def _forget_identity(root: Path) -> None:
    """Every host made from the image gets its own machine-id and SSH host keys at first boot."""
    inside(root, "/etc/machine-id").write_text("")
    inside(root, "/var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in inside(root, "/etc/ssh").glob("ssh_host_*"):
        key.unlink()
    inside(root, _SSH_KEYGEN).write_text(_SSH_KEYGEN_UNIT)
    wants = inside(root, _SSH_KEYGEN_WANTS)
    wants.unlink(missing_ok=True)
    wants.symlink_to(_SSH_KEYGEN)


def _build_into(out: Path, version: str) -> None:
    started = time.monotonic()
    sources = host_sources(SUITE)
    with tempfile.TemporaryDirectory(prefix="dom0-root-", dir=out.parent) as tmp:
        root = Path(tmp) / "root"
        rootfs.debootstrap(root, SUITE, sources)
        with rootfs.chroot_mounts(root):
            rootfs.apt_install(root, SUITE, sources, PACKAGES)
            install_overlay(root, version)
            _forget_identity(root)
            # apt made the initrd before the overlay masked udev's naming policy; udev in the
            # initrd would rename eth0 to ens3 and the installer's network stanza would miss.
            rootfs.chroot(root, "update-initramfs", "-u", "-k", "all")
        kernel, initrd, kernel_version = _kernel_files(root)
        shutil.copyfile(kernel, out / KERNEL)
        shutil.copyfile(initrd, out / INITRD)
        if not inside(root, dom0_layout.SERIAL_GETTY_UNIT).is_file():
            raise BuildError(
                f"{dom0_layout.SERIAL_GETTY_UNIT} missing: the hvc0 getty would not start"
            )
        rootfs.pack_tar_zst(root, out / ROOTFS)
    (out / "dom0.json").write_text(
        json.dumps(
            {
                "version": version,
                "kernel_version": kernel_version,
                "build_seconds": round(time.monotonic() - started, 1),
            }
        )
        + "\n"
    )
