"""The answer-file model: what an XCP-ng 8.3 answer file says, as typed values.

Pure data. The parser fills it from XML with XCP-ng's defaults already applied (so a consumer never
re-derives a default), the writer turns it back into XML that XCP-ng accepts, the TUI fills it from
screens, and the installer and server read it. Plaintext root passwords never get here: the parser
hashes them on the way in, so nothing downstream can store or log one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    FRESH = "fresh"
    REINSTALL = "reinstall"
    UPGRADE = "upgrade"
    RESTORE = "restore"


class SrType(StrEnum):
    EXT = "ext"
    LVM = "lvm"
    # XCP-ng 8.3's SR type for disks with 4096-byte logical sectors (4Kn), which ext and lvm
    # SRs cannot hold.
    LARGEBLOCK = "largeblock"


class SourceType(StrEnum):
    LOCAL = "local"
    URL = "url"
    NFS = "nfs"


class ScriptStage(StrEnum):
    INSTALLATION_START = "installation-start"
    FILESYSTEM_POPULATED = "filesystem-populated"
    INSTALLATION_COMPLETE = "installation-complete"


class BootloaderLocation(StrEnum):
    MBR = "mbr"
    PARTITION = "partition"


class NetworkBackend(StrEnum):
    BRIDGE = "bridge"
    OPENVSWITCH = "openvswitch"


class Proto(StrEnum):
    STATIC = "static"
    DHCP = "dhcp"
    NONE = "none"


class ProtoV6(StrEnum):
    STATIC = "static"
    DHCP = "dhcp"
    AUTOCONF = "autoconf"
    NONE = "none"


class PreserveFirstPartition(StrEnum):
    TRUE = "true"
    FALSE = "false"
    IF_UTILITY = "if-utility"


class NtpSource(StrEnum):
    DHCP = "dhcp"
    DEFAULT = "default"
    MANUAL = "manual"
    NONE = "none"


class ServiceState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Source:
    """Where the product comes from; ``location`` is empty for ``local``.

    ``gpgcheck``/``repo_gpgcheck`` are this element's own attributes; None (not written) lets
    the root's value, then the installer's default, decide, as XCP-ng does.
    """

    type: SourceType
    location: str = ""
    gpgcheck: bool | None = None
    repo_gpgcheck: bool | None = None


@dataclass(frozen=True)
class Script:
    stage: ScriptStage
    type: SourceType
    location: str


@dataclass(frozen=True)
class Bootloader:
    location: BootloaderLocation = BootloaderLocation.MBR
    write_boot_entry: bool = True


@dataclass(frozen=True)
class PrimaryDisk:
    """The disk XCP-ng installs onto: a name (``sda``) or a path (``/dev/disk/by-id/...``)."""

    disk: str
    guest_storage: bool = True
    sr_at_end: bool = True
    preserve_first_partition: PreserveFirstPartition = PreserveFirstPartition.IF_UTILITY


@dataclass(frozen=True)
class Raid:
    device: str
    disks: tuple[str, ...]


@dataclass(frozen=True)
class AdminInterface:
    """The management NIC, chosen by ``name``, by ``hwaddr``, or by both naming the same NIC."""

    name: str | None = None
    hwaddr: str | None = None
    proto: Proto = Proto.DHCP
    protov6: ProtoV6 = ProtoV6.NONE
    vlan: int | None = None
    ipaddr: str | None = None
    subnet: str | None = None
    gateway: str | None = None
    ipv6: str | None = None
    gatewayv6: str | None = None


@dataclass(frozen=True)
class Ntp:
    source: NtpSource
    servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    name: str
    state: ServiceState


@dataclass(frozen=True)
class DiskRule:
    """Our extension: pick the primary disk by identity or by a size rule instead of a name.

    Every field that is set must match; ``smallest`` picks the smallest disk among the matches.
    Removable and USB disks never match a rule: they can only be named by a stable id.
    """

    by_id: str | None = None
    serial: str | None = None
    wwn: str | None = None
    min_size_gib: int | None = None
    max_size_gib: int | None = None
    smallest: bool = False


@dataclass(frozen=True)
class Provisioning:
    """Our extension (namespace ``answerfiles.namespace.NS``): what XCP-ng's grammar lacks."""

    server_url: str | None = None
    token: str | None = None
    pool: str | None = None
    pool_force: bool = False
    disk_rule: DiskRule | None = None


@dataclass(frozen=True)
class AnswerFile:
    """One whole answer file, defaults applied as XCP-ng 8.3 applies them.

    ``sr_type`` None is the one default that depends on the hardware: XCP-ng 8.3 picks
    ``largeblock`` when a disk of the local SR has 4096-byte logical sectors, else ``ext``, so it
    is decided with the disks in hand (``installer.plan``), not here.
    """

    mode: Mode = Mode.FRESH
    sr_type: SrType | None = None
    # None: not written. The default then depends on the installer (a site key makes it true,
    # see installer/release_trust.py), so "not said" must stay distinct from "true".
    gpgcheck: bool | None = None
    repo_gpgcheck: bool | None = None
    sources: tuple[Source, ...] = ()
    driver_sources: tuple[Source, ...] = ()
    scripts: tuple[Script, ...] = ()
    ui_confirmation_prompt: bool = False
    bootloader: Bootloader = field(default_factory=Bootloader)
    network_backend: NetworkBackend = NetworkBackend.OPENVSWITCH
    primary_disk: PrimaryDisk | None = None
    guest_disks: tuple[str, ...] = ()
    raid: Raid | None = None
    admin_interface: AdminInterface | None = None
    # A SHA-512 crypt hash; None leaves root locked, as XCP-ng does without <root-password>.
    root_password_hash: str | None = None
    name_servers: tuple[str, ...] = ()
    hostname: str = "localhost.localdomain"
    timezone: str = "Etc/UTC"
    keymap: str = "us"
    ntp: Ntp = field(default_factory=lambda: Ntp(NtpSource.DEFAULT))
    services: tuple[Service, ...] = ()
    existing_installation: str | None = None
    backup_disk: str | None = None
    provisioning: Provisioning = field(default_factory=Provisioning)
