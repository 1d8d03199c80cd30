"""A disk that boots a kernel the way a machine with Secure Boot on must: Debian's signed shim,
then Debian's signed GRUB, then the kernel, each checked by the one before.

Firmware with Microsoft's keys (OVMF's ``OVMF_VARS_4M.ms.fd``, most servers as shipped) runs only
what Microsoft's UEFI CA signed: shim. Shim carries Debian's CA and runs GRUB only when Debian
signed it; GRUB hands the kernel to shim for the same check. Debian builds its signed GRUB as one
image whose prefix is ``/EFI/debian`` on the device it was loaded from, so its ``grub.cfg`` goes
there, whatever directory the image itself sits in.

The disk is a GPT with one EFI system partition, made and filled without a mount (sgdisk,
``mkfs.vfat --offset``, mtools): the test machine's kernel has no vfat.
"""

from __future__ import annotations

from pathlib import Path

from common.runner import run

SHIM = Path("/usr/lib/shim/shimx64.efi.signed")  # shim-signed
GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")  # grub-efi-amd64-signed
GRUB_PREFIX = "/EFI/debian"
KERNEL = "/xcp/vmlinuz"
INITRD = "/xcp/initrd.img"
SECTOR = 512
ESP_FIRST_SECTOR = 2048
ESP_TYPE = "ef00"
_MIB = 1 << 20
_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}


def missing_loaders() -> list[Path]:
    """The signed loaders not installed here (their Debian packages are named beside them)."""
    return [path for path in (SHIM, GRUB) if not path.is_file()]


def grub_cfg(kernel_args: str) -> str:
    """GRUB's whole configuration: no menu, straight to the kernel. Each argument is quoted, so
    GRUB's parser keeps ``?``, ``&`` and ``;`` of a URL as they are."""
    words = kernel_args.split()
    for word in words:
        if "'" in word:
            raise ValueError(f"kernel argument {word!r}: a single quote cannot be passed by GRUB")
    quoted = " ".join(f"'{word}'" for word in words)
    return (
        "set timeout=0\n"
        "echo 'shim-disk: GRUB loading the kernel'\n"
        f"linux {KERNEL} {quoted}\n"
        "echo 'shim-disk: GRUB loading the initrd'\n"
        f"initrd {INITRD}\n"
        "boot\n"
    )


def build_shim_disk(path: Path, kernel: Path, initrd: Path, kernel_args: str) -> Path:
    """A new disk image at ``path``: shim as the removable-media loader (``EFI/BOOT/BOOTX64.EFI``),
    GRUB beside it, and a ``grub.cfg`` that boots ``kernel`` and ``initrd`` with
    ``kernel_args``."""
    payload = sum(p.stat().st_size for p in (SHIM, GRUB, kernel, initrd))
    esp_mib = payload // _MIB + 48  # FAT32 and its tables, with room to spare
    size = (ESP_FIRST_SECTOR * SECTOR) + esp_mib * _MIB + _MIB  # the backup GPT at the end
    with open(path, "wb") as fh:
        fh.truncate(size)
    last = ESP_FIRST_SECTOR + esp_mib * _MIB // SECTOR - 1
    run(["sgdisk", "--clear", f"--new=1:{ESP_FIRST_SECTOR}:{last}", f"--typecode=1:{ESP_TYPE}",
         "--change-name=1:EFI system partition", path])  # fmt: skip
    run(["mkfs.vfat", "-F", "32", "-n", "SHIMBOOT", "--offset", str(ESP_FIRST_SECTOR), path,
         str(esp_mib * 1024)])  # fmt: skip
    esp = f"{path}@@{ESP_FIRST_SECTOR * SECTOR}"
    for directory in ("::/EFI", "::/EFI/BOOT", f"::{GRUB_PREFIX}", "::/xcp"):
        run(["mmd", "-i", esp, directory], env=_MTOOLS_ENV)
    config = path.with_name(path.name + ".grub.cfg")
    config.write_text(grub_cfg(kernel_args))
    for source, target in (
        (SHIM, "::/EFI/BOOT/BOOTX64.EFI"),
        (GRUB, "::/EFI/BOOT/grubx64.efi"),
        (config, f"::{GRUB_PREFIX}/grub.cfg"),
        (kernel, f"::{KERNEL}"),
        (initrd, f"::{INITRD}"),
    ):
        run(["mcopy", "-i", esp, source, target], env=_MTOOLS_ENV)
    config.unlink()
    return path
