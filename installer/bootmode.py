"""How this machine booted: the firmware mode and the console the installer talks on.

Both are defaults a command line may override (``--boot-mode``) and both are read from the running
kernel, so they live apart from the backends that consume them.
"""

from __future__ import annotations

from pathlib import Path

from installer.plan import BootMode

# The kernel creates this directory only when it was started by UEFI firmware.
EFI_FIRMWARE = Path("/sys/firmware/efi")
PROC_CMDLINE = Path("/proc/cmdline")
_SERIAL_TTYS = ("ttyS", "ttyAMA", "hvc")


def booted_mode(firmware: Path = EFI_FIRMWARE) -> BootMode:
    """The default ``--boot-mode``: installing for the other firmware would leave a host that
    cannot boot on the machine it was installed from."""
    return BootMode.UEFI if firmware.is_dir() else BootMode.BIOS


def on_serial_console(proc_cmdline: Path = PROC_CMDLINE) -> bool:
    """Whether the installer's own console is a serial line (``console=ttyS0,...``, the last
    ``console=`` wins, as in Linux), so the installed host defaults to its serial entry too."""
    try:
        words = proc_cmdline.read_text().split()
    except OSError:
        return False
    consoles = [w.removeprefix("console=") for w in words if w.startswith("console=")]
    return bool(consoles) and consoles[-1].startswith(_SERIAL_TTYS)
