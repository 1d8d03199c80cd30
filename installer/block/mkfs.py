"""Making filesystems: one function per kind, labels always set (fstab finds them by label)."""

from __future__ import annotations

from common.runner import run


def ext(device: str, label: str, *, kind: str = "ext3") -> None:
    run([f"mkfs.{kind}", "-F", "-q", "-L", label, device])


def vfat(device: str, label: str) -> None:
    """FAT32 for the EFI system partition; made without mounting (no vfat driver needed)."""
    run(["mkfs.vfat", "-F", "32", "-n", label, device])


def swap(device: str, label: str) -> None:
    run(["mkswap", "--label", label, device])
