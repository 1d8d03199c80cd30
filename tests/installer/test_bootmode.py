"""How this machine booted: one rule for ``xcp-install plan``/``partition`` and the backends.

The command line tested for ``/sys/firmware/efi`` existing and the backends for it being a
directory; the kernel only ever makes a directory there, and the directory test is the rule now.
"""

from __future__ import annotations

from pathlib import Path

from installer.bootmode import booted_mode
from installer.plan import BootMode


def test_uefi_only_when_the_firmware_directory_exists(tmp_path: Path) -> None:
    efi = tmp_path / "efi"
    assert booted_mode(efi) is BootMode.BIOS
    efi.write_text("")
    assert booted_mode(efi) is BootMode.BIOS
    efi.unlink()
    efi.mkdir()
    assert booted_mode(efi) is BootMode.UEFI
