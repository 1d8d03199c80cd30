"""Xen boot entries: the Xen and dom0 command lines and the GRUB multiboot2 menu.

Sizing follows XCP-ng (xcp-python-libs ``dom0.py``, platform 2.9+) so a host installed here gets
the dom0 that an XCP-ng admin expects: 1 GiB plus 5% of host memory rounded down to 16 MiB and
capped at 8 GiB, and a vCPU count that grows in steps with the host's CPUs. The menu mirrors
XCP-ng's four entries so operators find the serial and safe-mode entries where they look for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MENU_TITLE = "XCP-provision"
SERIAL_PORT = "com1"
SERIAL_SPEED = 115200
SERIAL_SETTINGS = f"{SERIAL_SPEED},8n1"
SAFE_MODE_XEN_ARGS = (
    "nosmp",
    "noreboot",
    "noirqbalance",
    "no-mce",
    "no-bootscrub",
    "no-numa",
    "no-hap",
    "no-mmcfg",
    "max_cstate=0",
    "nmi=ignore",
    "allow_unsafe",
)


class HostConsole(StrEnum):
    """Where the installed host's default entry sends Xen's and dom0's console.

    Racks are watched over serial-over-LAN and benches through a screen, so the default is
    both: Xen writes to COM1 and VGA, and dom0's console is Xen's (``hvc0``). ``vga`` keeps the
    screen alone (XCP-ng's default entry); ``serial`` boots the serial entry by default.
    """

    BOTH = "serial+vga"
    VGA = "vga"
    SERIAL = "serial"


def dom0_memory_mib(host_memory_kib: int) -> int:
    """dom0's memory for a host with ``host_memory_kib`` of RAM, as XCP-ng 8.x sizes it.

    The RAM the firmware reports excludes what Xen keeps, hence the 256 MiB added back first.
    """
    host_mib = (host_memory_kib + 256 * 1024) // 1024
    return min((1024 + int(host_mib * 0.05)) & ~0xF, 8192)


def dom0_vcpus(host_cpus: int) -> int:
    """dom0's vCPU ceiling for a host with ``host_cpus`` logical CPUs, as XCP-ng sizes it."""
    steps = ((2, 1), (3, 2), (4, 3), (24, 4), (32, 6))
    for below, vcpus in steps:
        if host_cpus < below:
            return vcpus
    return 8


@dataclass(frozen=True)
class BootFiles:
    """Paths of one Xen + dom0 kernel + initrd triple, absolute inside the root filesystem."""

    xen: str
    kernel: str
    initrd: str


@dataclass(frozen=True)
class XenBoot:
    """Everything the menu needs; ``fallback`` names the versioned files behind the defaults."""

    root_label: str
    dom0_mem_mib: int
    dom0_max_vcpus: int
    default: BootFiles
    fallback: BootFiles
    title: str = MENU_TITLE
    version: str = ""
    dom0_args: tuple[str, ...] = ()
    console: HostConsole = HostConsole.BOTH

    @classmethod
    def for_host(
        cls,
        host_memory_kib: int,
        host_cpus: int,
        root_label: str,
        default: BootFiles,
        fallback: BootFiles,
        **kwargs: object,
    ) -> XenBoot:
        return cls(
            root_label=root_label,
            dom0_mem_mib=dom0_memory_mib(host_memory_kib),
            dom0_max_vcpus=dom0_vcpus(host_cpus),
            default=default,
            fallback=fallback,
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class MenuEntry:
    title: str
    xen: str
    xen_args: tuple[str, ...]
    kernel: str
    kernel_args: tuple[str, ...]
    initrd: str


def xen_args(boot: XenBoot, *, serial: bool = False, safe: bool = False) -> tuple[str, ...]:
    """Xen's command line; ``max:`` pins dom0 memory so ballooning never starves dom0."""
    mem = f"dom0_mem={boot.dom0_mem_mib}M,max:{boot.dom0_mem_mib}M"
    vcpus = f"dom0_max_vcpus=1-{boot.dom0_max_vcpus}"
    if safe:
        return (*SAFE_MODE_XEN_ARGS, mem, *_serial_console(), vcpus)
    common = (mem, "watchdog", "ucode=scan", vcpus, "crashkernel=256M,below=4G")
    if serial:
        return (*_serial_console(), *common)
    if boot.console is HostConsole.BOTH:
        return (*_serial_console(), *common, "vga=mode-0x0311")
    return (*common, "console=vga", "vga=mode-0x0311")


def _serial_console() -> tuple[str, ...]:
    return (f"{SERIAL_PORT}={SERIAL_SETTINGS}", f"console={SERIAL_PORT},vga")


def dom0_args(boot: XenBoot, *, serial: bool = False, safe: bool = False) -> tuple[str, ...]:
    """dom0 kernel's command line; the root is found by label, never by device name."""
    root = (f"root=LABEL={boot.root_label}", "ro")
    if safe:
        console: tuple[str, ...] = ("earlyprintk=xen", "console=tty0", "console=hvc0")
    elif serial or boot.console is HostConsole.BOTH:
        console = ("console=tty0", "console=hvc0")
    else:
        console = ("console=hvc0", "console=tty0", "quiet")
    return (*root, *console, *boot.dom0_args)


def menu_entries(boot: XenBoot) -> tuple[MenuEntry, ...]:
    """The four entries, in menu order: default, serial console, safe mode, fallback."""
    d, f = boot.default, boot.fallback
    suffix = f" ({boot.version})" if boot.version else ""
    return (
        MenuEntry(boot.title, d.xen, xen_args(boot), d.kernel, dom0_args(boot), d.initrd),
        MenuEntry(
            f"{boot.title} (Serial)",
            d.xen,
            xen_args(boot, serial=True),
            d.kernel,
            dom0_args(boot, serial=True),
            d.initrd,
        ),
        MenuEntry(
            f"{boot.title} in Safe Mode",
            d.xen,
            xen_args(boot, safe=True),
            d.kernel,
            dom0_args(boot, safe=True),
            d.initrd,
        ),
        MenuEntry(
            f"{boot.title} fallback{suffix}",
            f.xen,
            xen_args(boot, serial=True),
            f.kernel,
            dom0_args(boot, serial=True),
            f.initrd,
        ),
    )


def render_entry(entry: MenuEntry, root_label: str) -> str:
    return (
        f"menuentry '{_quote(entry.title)}' {{\n"
        f"\tsearch --no-floppy --label --set root {root_label}\n"
        f"\tmultiboot2 {entry.xen} {' '.join(entry.xen_args)}\n"
        f"\tmodule2 {entry.kernel} {' '.join(entry.kernel_args)}\n"
        f"\tmodule2 {entry.initrd}\n"
        "}\n"
    )


def _quote(title: str) -> str:
    return title.replace("'", "'\\''")


def render_grub_cfg(boot: XenBoot, *, timeout: int = 5) -> str:
    """A whole grub.cfg: console on serial and screen, the four entries, default first."""
    header = (
        "# Written by xcp-provision; regenerate rather than edit.\n"
        f"serial --unit=0 --speed={SERIAL_SPEED}\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        "insmod part_gpt\n"
        "insmod ext2\n"
        "insmod gzio\n"
        "insmod multiboot2\n"
        f"set default={1 if boot.console is HostConsole.SERIAL else 0}\n"
        f"set timeout={timeout}\n"
    )
    return header + "".join(render_entry(e, boot.root_label) for e in menu_entries(boot))
