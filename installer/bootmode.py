"""How this machine booted: the firmware mode and its Secure Boot state.

The mode is a default a command line may override (``--boot-mode``); both are read from the
running kernel, so they live apart from the backends that consume them. No command line overrides
Secure Boot: the installed host boots Xen, which Debian does not sign.
"""

from __future__ import annotations

import logging
from pathlib import Path

from installer.errors import RefusedError
from installer.plan import BootMode

log = logging.getLogger(__name__)

# The kernel creates this directory only when it was started by UEFI firmware.
EFI_FIRMWARE = Path("/sys/firmware/efi")
# SecureBoot is a variable of the UEFI global namespace (EFI_GLOBAL_VARIABLE).
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


class SecureBootError(RefusedError):
    """The firmware enforces Secure Boot, which the installed host cannot boot under."""

    def __init__(self) -> None:
        super().__init__(
            "Secure Boot is on in this host's firmware and the installed host cannot boot Xen "
            "with it (Debian does not sign Xen), so nothing was written: turn Secure Boot off "
            "in the firmware setup, or boot this installer in legacy (BIOS) mode, and install "
            "again"
        )


def booted_mode(firmware: Path | None = None) -> BootMode:
    """The default ``--boot-mode``: installing for the other firmware would leave a host that
    cannot boot on the machine it was installed from."""
    return BootMode.UEFI if (firmware or EFI_FIRMWARE).is_dir() else BootMode.BIOS


def secure_boot(firmware: Path | None = None) -> bool | None:
    """Whether the firmware enforces Secure Boot; ``None`` when it cannot be told.

    efivarfs (``efivars/``) gives 4 bytes of attributes then the value; the sysfs interface
    older kernels have (``vars/``) gives the value alone. The variable is absent on BIOS and on
    firmware older than UEFI 2.3.1, which has no Secure Boot. An empty ``efivars/`` (efivarfs
    not mounted) says nothing either way.
    """
    firmware = firmware or EFI_FIRMWARE
    if not firmware.is_dir():
        return False
    sources = ((firmware / "efivars" / SECURE_BOOT_VAR, 4),
               (firmware / "vars" / SECURE_BOOT_VAR / "data", 0))
    for path, skip in sources:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot read %s (%s): Secure Boot state unknown", path, exc)
            return None
        value = data[skip:]
        if value in (b"\x00", b"\x01"):
            return value == b"\x01"
        log.warning("%s holds %r, not one byte 0 or 1: Secure Boot state unknown", path, data)
        return None
    if any(_entries(firmware / "efivars")) or any(_entries(firmware / "vars")):
        return False
    log.warning("no EFI variables under %s (is efivarfs mounted?): Secure Boot state unknown",
                firmware)
    return None


def refuse_secure_boot(firmware: Path | None = None) -> None:
    """Refuse when Secure Boot is known to be on. Unknown is let through, logged: refusing it
    would stop every host whose efivarfs did not mount, and installing is what happened before
    this check existed."""
    if secure_boot(firmware):
        raise SecureBootError


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []
