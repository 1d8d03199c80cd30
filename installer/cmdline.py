"""The installer's kernel command line, read as XCP-ng 8.3 reads it.

Network boot hands the installer its whole brief on the command line (``answerfile=``,
``network_device=``, ``network_config=``, ``atexit=``). A block device labelled ``autoinstall``
holding a file ``cmdline`` replaces it, so a USB stick can carry the same words when a PXE server
cannot. The file is read without mounting (mtools for vfat, debugfs for ext), which works even
where the kernel lacks the filesystem's driver.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from common import runner
from common.errors import CommandError
from hypervisor.grub import HostConsole
from installer.errors import RefusedError

AUTOINSTALL_LABEL = "autoinstall"
AUTOINSTALL_FILE = "cmdline"
ATEXIT_ACTIONS = ("reboot", "poweroff", "shell")


class CmdlineError(RefusedError):
    """A kernel command line word the installer cannot act on."""

    def __init__(self, word: str, reason: str) -> None:
        self.word = word
        self.reason = reason
        super().__init__(f"kernel command line {word!r}: {reason}")


@dataclass(frozen=True)
class NetworkConfig:
    """``network_config=``: how the installer itself reaches the answer file and the images."""

    dhcp: bool = True
    vlan: int | None = None
    ip: str | None = None
    netmask: str | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    domain: str | None = None


@dataclass(frozen=True)
class BootArgs:
    answerfile: str | None = None
    answerfile_generator: str | None = None
    network_device: str = "all"
    network_config: NetworkConfig = field(default_factory=NetworkConfig)
    atexit: str = "reboot"
    install: bool = False
    # Ours, not XCP-ng's: where the installed host's console goes (a profile's kernel argument).
    host_console: HostConsole = HostConsole.BOTH


def parse_cmdline(text: str) -> BootArgs:
    """The installer's words from a kernel command line; unknown words belong to the kernel."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        if sep:
            values[key] = value
        else:
            flags.add(key)
    device = values.get("network_device") or values.get("answerfile_device") or "all"
    atexit = values.get("atexit", "reboot")
    if atexit not in ATEXIT_ACTIONS:
        raise CmdlineError(f"atexit={atexit}", f"expected one of {', '.join(ATEXIT_ACTIONS)}")
    network = NetworkConfig()
    if "network_config" in values:
        network = parse_network_config(values["network_config"])
    console = values.get("host_console", HostConsole.BOTH.value)
    if console not in set(HostConsole):
        choices = ", ".join(HostConsole)
        raise CmdlineError(f"host_console={console}", f"expected one of {choices}")
    return BootArgs(
        answerfile=values.get("answerfile") or None,
        answerfile_generator=values.get("answerfile_generator") or None,
        network_device=device,
        network_config=network,
        atexit=atexit,
        install="install" in flags,
        host_console=HostConsole(console),
    )


def parse_network_config(value: str) -> NetworkConfig:
    """``dhcp[:vlan=N]`` or ``static:ip=A;netmask=M[;gateway=G][;dns=a,b][;domain=D][;vlan=N]``."""
    word = f"network_config={value}"
    mode, _, rest = value.partition(":")
    fields: dict[str, str] = {}
    for item in filter(None, rest.split(";")):
        key, sep, val = item.partition("=")
        if not sep or not val:
            raise CmdlineError(word, f"{item!r} is not key=value")
        fields[key] = val
    vlan = _vlan(word, fields.pop("vlan", None))
    if mode == "dhcp":
        if fields:
            raise CmdlineError(word, f"dhcp takes only vlan=, not {', '.join(sorted(fields))}")
        return NetworkConfig(dhcp=True, vlan=vlan)
    if mode != "static":
        raise CmdlineError(word, "expected dhcp or static:ip=...;netmask=...")
    unknown = set(fields) - {"ip", "netmask", "gateway", "dns", "domain"}
    if unknown:
        raise CmdlineError(word, f"unknown field {', '.join(sorted(unknown))}")
    for required in ("ip", "netmask"):
        if required not in fields:
            raise CmdlineError(word, f"static needs {required}=")
    dns = tuple(filter(None, fields.get("dns", "").split(",")))
    for address in (fields["ip"], fields["netmask"], fields.get("gateway"), *dns):
        if address is not None:
            _address(word, address)
    return NetworkConfig(
        dhcp=False,
        vlan=vlan,
        ip=fields["ip"],
        netmask=fields["netmask"],
        gateway=fields.get("gateway"),
        dns=dns,
        domain=fields.get("domain"),
    )


def _vlan(word: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 4094:
        raise CmdlineError(word, f"vlan={text} is not a VLAN id (1-4094)")
    return int(text)


def _address(word: str, text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        raise CmdlineError(word, f"{text!r} is not an IP address") from exc


def find_autoinstall_devices() -> tuple[str, ...]:
    """Every block device labelled ``autoinstall``, in blkid's order."""
    result = runner.run(
        ["blkid", "-t", f"LABEL={AUTOINSTALL_LABEL}", "-o", "device"], check=False
    )
    return tuple(result.stdout.split())


def find_autoinstall_device() -> str | None:
    """The first block device labelled ``autoinstall``, or None when there is none."""
    devices = find_autoinstall_devices()
    return devices[0] if devices else None


def read_autoinstall_cmdline(device: str) -> str:
    """The ``cmdline`` file of an ``autoinstall`` filesystem, read without mounting it."""
    fstype = runner.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device]).stdout.strip()
    try:
        if fstype == "vfat":
            return runner.run(["mtype", "-i", device, f"::{AUTOINSTALL_FILE}"]).stdout
        if fstype in ("ext2", "ext3", "ext4"):
            text = runner.run(["debugfs", "-R", f"cat /{AUTOINSTALL_FILE}", device]).stdout
            if text:
                return text
            raise CmdlineError(device, f"no file {AUTOINSTALL_FILE!r} on the autoinstall device")
    except CommandError as exc:
        raise CmdlineError(
            device, f"cannot read {AUTOINSTALL_FILE!r} from the autoinstall device: {exc}"
        ) from exc
    raise CmdlineError(device, f"autoinstall filesystem {fstype or 'unknown'} is not vfat or ext")


def boot_args(proc_cmdline: Path = Path("/proc/cmdline")) -> BootArgs:
    """What the installer was booted with: the autoinstall device wins over /proc/cmdline."""
    device = find_autoinstall_device()
    if device is not None:
        return parse_cmdline(read_autoinstall_cmdline(device))
    return parse_cmdline(proc_cmdline.read_text())


def host_console(given: HostConsole | None = None) -> HostConsole:
    """Where an installed host's console goes: ``given``, else the boot command line's
    ``host_console=``. Every backend that writes a GRUB menu asks here."""
    return given if given is not None else boot_args().host_console
